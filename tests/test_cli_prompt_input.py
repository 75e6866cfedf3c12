"""Prompts from standard input and from a file; --json output a terminal cannot be tricked by."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PIXIE = Path(sys.executable).parent / "pixie"


def pixie(*args: str, home: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return subprocess.run([str(PIXIE), *args], input=stdin if stdin is not None else b"", capture_output=True,
                          env={**env, "PIXIE_HOME": str(home)}, timeout=300)


def saved_prompt(home: Path, stdout: bytes) -> str:
    run_id = json.loads(stdout)["runId"]
    return json.loads((home / "runs" / f"{run_id}.json").read_text())["prompt"]


def test_a_prompt_piped_to_run_dash_is_the_runs_prompt(tmp_path):
    done = pixie("run", "-", "--no-serve", "--json", home=tmp_path, stdin="Build a counter\n".encode())
    assert done.returncode == 0, done.stderr.decode()
    assert saved_prompt(tmp_path, done.stdout).strip() == "Build a counter"


def test_a_prompt_file_too_long_for_a_shell_argument(tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Build a page listing these words: " + "word " * 3_000, encoding="utf-8")
    done = pixie("run", "--prompt-file", str(prompt), "--no-serve", "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert saved_prompt(tmp_path, done.stdout) == prompt.read_text(encoding="utf-8").strip()


def test_bad_prompt_input_is_one_line_and_exit_2_with_nothing_created(tmp_path):
    for args, stdin, said in [
        (("run", "--no-serve"), None, "no prompt"),
        (("run", "x", "--prompt-file", str(tmp_path / "p.txt"), "--no-serve"), None, "not both"),
        (("run", "--prompt-file", str(tmp_path / "missing.txt"), "--no-serve"), None, "cannot read the prompt file"),
        (("run", "-", "--no-serve"), b"\xff\xfe not utf-8", "not UTF-8"),
        (("run", "-", "--no-serve"), b"   \n", "prompt"),
    ]:
        done = pixie(*args, home=tmp_path, stdin=stdin)
        assert done.returncode == 2, (args, done.stderr)
        err = done.stderr.decode()
        assert said in err and "Traceback" not in err, (args, err)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "sandboxes").exists()


def test_json_output_escapes_control_and_bidi_characters(tmp_path):
    prompt = "Build a page \u202etxt.exe\u202c with \x9b31m colour"
    done = pixie("run", "-", "--no-serve", "--json", home=tmp_path, stdin=prompt.encode())
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode("ascii")  # nothing but ASCII reaches the terminal
    shown = subprocess.run([str(PIXIE), "show", json.loads(out)["runId"], "--json"], capture_output=True,
                           env={**os.environ, "PIXIE_HOME": str(tmp_path)}, timeout=120)
    assert shown.returncode == 0
    shown.stdout.decode("ascii")  # raises if a raw control or bidi character was printed
    assert "\\u202e" in shown.stdout.decode()


def test_bad_numbers_and_ports_are_one_line_with_exit_2(tmp_path):
    import socket

    for args, said in (
        (["ui", "--no-open", "--port", "99999"], "must be a port number from 0 to 65535"),
        (["ui", "--no-open", "--port", "http"], "must be a port number"),
        (["list", "--limit", "abc"], "must be a whole number of at least 1, not 'abc'"),
        (["list", "--limit", "0"], "must be a whole number of at least 1"),
    ):
        result = pixie(*args, home=tmp_path)
        errors = result.stderr.decode().strip().splitlines()
        assert result.returncode == 2 and said in errors[-1] and "Traceback" not in result.stderr.decode(), (args, errors)

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        result = pixie("ui", "--no-open", "--port", str(busy.getsockname()[1]), home=tmp_path)
    finally:
        busy.close()
    assert result.returncode == 2 and "cannot listen on" in result.stderr.decode() and "Traceback" not in result.stderr.decode()


def test_every_subcommand_help_says_what_it_does_and_shows_an_example():
    from pixie.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    for name, command in commands.choices.items():
        text = command.format_help()
        assert command.description and len(command.description) > 10, name
        assert "example:" in text and f"pixie {name}" in text.split("example:", 1)[1], name


@pytest.mark.parametrize(
    "flag, value, said",
    [
        ("--budget-usd", "five", "--budget-usd: must be a number of US dollars above 0 and at most 10,000"),
        ("--budget-usd", "0", "must be a number of US dollars above 0"),
        ("--budget-usd", "nan", "must be a number of US dollars above 0"),
        ("--max-tokens", "1000000001", "--max-tokens: must be at most 1,000,000,000"),
        ("--approval-timeout", "366d", "--approval-timeout: must be a time from 1 s to 365 d"),
        ("--approval-timeout", "soon", "not 'soon'"),
        ("--approval-timeout", "0", "must be a time from 1 s to 365 d"),
        ("--check-command", " ", "--check-command: must be a shell command of 1 to 1000 characters"),
        ("--inject-faults", "1", "--inject-faults: must be at least 0 and below 1"),
    ],
)
def test_run_choices_out_of_range_are_one_line_with_exit_2(flag, value, said, capsys):
    from pixie.cli import build_parser

    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["run", "--no-serve", flag, value, "Build"])
    assert exited.value.code == 2
    assert said in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("value, seconds", [("90", 90), ("30m", 1800), ("24H", 86400), (" 365d ", 365 * 86400)])
def test_an_approval_timeout_reads_seconds_or_a_unit(value, seconds):
    from pixie.cli import build_parser

    assert build_parser().parse_args(["run", "--approval-timeout", value, "Build"]).approval_timeout == seconds
