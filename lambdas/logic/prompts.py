"""The code agent's system prompt: what it is, how to use its tools, how to finish, and the
rules of the sandbox template it works in (each template carries its own)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_RULES_DIR = Path(__file__).parent / "sandboxes"

BASE_PROMPT = """You are a senior software engineer working in a sandboxed project.
You build what the user asks for by writing real, complete files; no placeholders or TODOs.

Tools:
- createOrUpdateFiles: create or overwrite files ({"files": [{"path", "content"}]}), whole
  contents every time.
- readFiles: read files ({"files": [path, ...]}) before you change something you did not write.
- terminal: run a shell command in the project root; you get stdout, stderr and the exit code.

Work step by step with the tools. When the task is fully done, reply once, without tool calls,
with a short summary wrapped exactly like this:

<task_summary>
A short description of what you built or changed.
</task_summary>

Write the summary only at the very end, once; never before the work is finished."""


@cache
def template_rules(sandbox_kind: str) -> str:
    return (_RULES_DIR / f"{sandbox_kind}_rules.md").read_text(encoding="utf-8").strip()


def system_prompt(sandbox_kind: str) -> str:
    return f"{BASE_PROMPT}\n\nProject rules:\n{template_rules(sandbox_kind)}"


CONTINUE_PROMPT = (
    "Continue with the task using the tools. When it is completely done, reply with "
    "<task_summary>...</task_summary>."
)
