"""Mutants for the CLI and console run lifecycle (issue 19)."""

from tools.mutations import Mutant

PROMPT_INPUT = ["tests/test_cli_prompt_input.py"]

MUTANTS: list[Mutant] = [
    Mutant("cli-dash-is-the-prompt", "pixie/cli.py", PROMPT_INPUT,
           find='    if args.prompt == "-":', replace='    if args.prompt == "--never--":', count=1,
           promise="CLI: pixie run - reads the prompt from standard input"),
    Mutant("cli-show-json-passes-bidi", "pixie/cli.py", PROMPT_INPUT,
           find="        print(json.dumps(record, ensure_ascii=True, indent=2))", replace="        print(json.dumps(record, ensure_ascii=False, indent=2))",
           count=1, promise="CLI: --json escapes control and bidi characters"),
]
