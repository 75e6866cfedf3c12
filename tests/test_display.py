"""The live view (pixie/display.py) on a fake terminal, and the escaping every printed piece of
model or tool text goes through (pixie/terminal_text.py)."""

from __future__ import annotations

import io
import json
import re
import time

import pytest
from openai_stub import OpenAIStub, chat_completion

from lambdas.logic import progress
from pixie.display import LiveDisplay
from pixie.local_run import RunOptions, run_locally
from pixie.terminal_text import visible

ESC = "\x1b"


class FakeTTY(io.StringIO):
    def __init__(self, encoding: str = "utf-8") -> None:
        super().__init__()
        self._encoding = encoding

    @property
    def encoding(self) -> str:
        return self._encoding

    def isatty(self) -> bool:
        return True


def entered(name: str, kind: str = "TaskStateEntered") -> dict:
    return {"type": kind, "timestamp": "2026-11-26T10:00:00+00:00", "stateEnteredEventDetails": {"name": name}}


def exited(name: str, output: dict | None = None, kind: str = "TaskStateExited", at: str = "2026-11-26T10:00:03+00:00") -> dict:
    return {"type": kind, "timestamp": at, "stateExitedEventDetails": {"name": name, "output": json.dumps(output or {})}}


def failed(error: str, message: str) -> dict:
    cause = json.dumps({"errorType": error, "errorMessage": message})
    return {"type": "TaskFailed", "taskFailedEventDetails": {"error": error, "cause": cause}}


def without_escapes(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


# --- terminal_text.visible --------------------------------------------------------------------------
@pytest.mark.parametrize("mark", ["\u2066", "\u2067", "\u2068", "\u2069", "\u202a", "\u202e", "\u200e", "\u200f", "\u061c"])
def test_every_bidi_override_isolate_and_mark_is_written_out(mark):
    """Trojan Source: an isolate (U+2066..2069) reorders what the terminal shows as much as an
    override does."""
    escaped = f"\\u{ord(mark):04x}"
    assert visible(f"a{mark}b") == f"a{escaped}b"
    assert visible(f"a{mark}b", one_line=True) == f"a{escaped}b"


def test_visible_writes_out_control_characters_and_keeps_text():
    hostile = "ok\x1b]52;c;ZXZpbA==\x07 then\x1b[1A\x1b[2K\r\x9b31m\u202eevil\ttab\nnext"

    shown = visible(hostile)

    assert ESC not in shown and "\x07" not in shown and "\r" not in shown and "\x9b" not in shown and "\u202e" not in shown
    assert shown == "ok\\x1b]52;c;ZXZpbA==\\x07 then\\x1b[1A\\x1b[2K\\x0d\\x9b31m\\u202eevil\ttab\nnext"
    assert visible("a\nb\tc", one_line=True) == "a\\x0ab\\x09c"
    assert visible("héllo → ✓ 日本") == "héllo → ✓ 日本"  # printable text is untouched
    assert visible(None) == ""


# --- plain lines -------------------------------------------------------------------------------------
def test_a_failed_step_is_marked_failed_never_ok():
    stream = io.StringIO()
    display = LiveDisplay(stream, live=False)
    display(entered("AgentTurn"))
    display(failed("ModelAuthFailed", "openai:gpt-4.1: API key rejected (401)"))
    display(exited("AgentTurn", {"iteration": 0, "runId": "r"}))

    text = stream.getvalue()
    assert "✗ AgentTurn" in text and "ModelAuthFailed: openai:gpt-4.1: API key rejected (401)" in text
    assert "✓" not in text


def test_a_retried_failure_shows_the_attempt_and_the_wait_then_the_final_error():
    stream = io.StringIO()
    display = LiveDisplay(stream, live=False)
    display(entered("AgentTurn"))
    display.on_progress("r", "retry.wait", {"seconds": 4.2})  # what the embedded engine reports
    display(failed("ModelThrottled", "rate limited (429) after retries"))
    display(failed("ModelThrottled", "rate limited (429) after retries"))  # no wait reported: the policy's bound
    for _ in range(3):
        display(failed("ModelThrottled", "rate limited (429) after retries"))
    display(exited("AgentTurn"))

    lines = stream.getvalue().splitlines()
    # agent.asl.json: ModelThrottled is retried 4 times (5 attempts), from 5 s, doubling, full jitter.
    assert lines[0] == "↻ AgentTurn attempt 2/5 in 4.2 s — ModelThrottled: rate limited (429) after retries"
    assert lines[1].startswith("↻ AgentTurn attempt 3/5 in ≤ 10 s — ModelThrottled")
    assert lines[3].startswith("↻ AgentTurn attempt 5/5 in ≤ 40 s")
    assert lines[4].startswith("✗ AgentTurn") and "ModelThrottled: rate limited" in lines[4]
    assert len(lines) == 5


def test_ascii_marks_where_the_encoding_cannot_print_them():
    stream = FakeTTY(encoding="ascii")
    display = LiveDisplay(stream, live=False, colour=False)
    display(entered("CreateSandbox"))
    display(exited("CreateSandbox"))
    display(entered("AgentTurn"))
    display(failed("Interrupted", "pixie was interrupted (Ctrl-C)"))
    display(exited("AgentTurn"))

    text = stream.getvalue()
    text.encode("ascii")  # nothing the terminal cannot print
    assert "+ CreateSandbox" in text and "x AgentTurn" in text


def test_model_text_in_finished_lines_is_escaped():
    stream = io.StringIO()
    display = LiveDisplay(stream, live=False)
    display(entered("AgentTurn"))
    display(exited("AgentTurn", {"iteration": 1, "toolCalls": [{"id": "c", "name": f"evil{ESC}]52;c;eA==\x07"}]}))

    assert ESC not in stream.getvalue() and "evil\\x1b]52" in stream.getvalue()


# --- the live view ---------------------------------------------------------------------------------
def test_live_view_shows_the_running_step_streamed_text_and_the_command_tail(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    tty = FakeTTY()
    display = LiveDisplay(tty)
    assert display.live and display.style.colour
    display(entered("AgentTurn"))
    for piece in ("I'll create ", "the files.\nFirst ", "index.html", f" {ESC}[2K{ESC}]52;c;eA==\x07"):
        display.on_progress("r", "model.text", {"text": piece})
    display.on_progress("r", "model.tool_call", {"index": 0, "name": "createOrUpdateFiles", "arguments": '{"files": '})
    time.sleep(0.25)  # the elapsed time ticks on its own
    live = tty.getvalue()
    assert "AgentTurn" in live and re.search(r"AgentTurn\s+0\.[1-9]s", without_escapes(live))
    assert "\x1b[2m" in live  # model text dimmed
    assert "First index.html" in without_escapes(live)
    assert "→ createOrUpdateFiles" in live
    display(exited("AgentTurn", {"iteration": 1, "toolCalls": [{"id": "c", "name": "terminal"}]}))

    display(entered("RunTool"))
    display.on_progress("r", "command.start", {"command": "npm test"})
    for n in range(1, 8):
        display.on_progress("r", "command.output", {"stream": "stdout", "text": f"line {n}\n"})
    tail = without_escapes(tty.getvalue()[len(live):])
    assert "$ npm test" in tail and "line 7" in tail
    display(exited("RunTool", {"ok": True}))
    display.close()

    final = tty.getvalue()
    # Only pixie's own colour and cursor codes: the model's ESC]52 and ESC[2K were written out.
    assert "\x1b]52" not in final and "\\x1b]52" in final
    codes = set(re.findall(r"\x1b\[[0-9;]*[A-Za-z]", final))
    assert codes <= {"\x1b[2m", "\x1b[0m", "\x1b[32m", "\x1b[36m", "\x1b[2K", "\x1b[1A", "\x1b[31m", "\x1b[33m", "\x1b[1m"}
    assert ESC not in final.replace("\x1b[", "")  # no other escape reaches the terminal
    # When the step ended its live lines were erased and its finished line written last.
    assert without_escapes(final.rstrip("\n").splitlines()[-1]).endswith("✓ RunTool          3.00s")


def test_no_color_keeps_the_live_view_without_colours(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    tty = FakeTTY()
    display = LiveDisplay(tty)
    display(entered("AgentTurn"))
    display.on_progress("r", "model.text", {"text": "thinking"})
    display(exited("AgentTurn", {"iteration": 1}))
    display.close()

    assert display.live is False  # closed
    assert not re.search(r"\x1b\[[0-9;]*m", tty.getvalue())  # no colour codes
    assert "thinking" in tty.getvalue()


def test_live_view_of_a_real_run_against_the_stand_in_server(tmp_path, monkeypatch):
    """The model's streamed text reaches the live view as the run goes (AgentTurn → progress)."""
    stub = OpenAIStub().start()
    try:
        stub.reply(200, chat_completion("Streaming words to you. <task_summary>Said hello</task_summary>"), chunk_delay_s=0.05)
        monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        tty = FakeTTY()
        display = LiveDisplay(tty, colour=False)
        unsubscribe = progress.subscribe(display.on_progress)
        try:
            record = run_locally("Say hello", RunOptions(model="openai:gpt-4.1", pixie_home=tmp_path), on_event=display)
        finally:
            unsubscribe()
            display.close()
    finally:
        stub.stop()

    assert record["status"] == "SUCCEEDED", record
    assert stub.requests[0].body["stream"] is True
    shown = tty.getvalue()
    assert "│ Streaming words" in shown  # drawn live, before the turn ended
    assert "✓ AgentTurn" in shown and "turn 1 → summary" in shown


def test_a_tool_call_that_errored_is_not_marked_ok():
    stream = io.StringIO()
    display = LiveDisplay(stream, live=False)
    display(entered("RunTool"))
    display({"type": "TaskScheduled", "taskScheduledEventDetails": {"parameters": json.dumps({"Payload": {"name": "readFiles"}})}})
    display(exited("RunTool", {"ok": False}))

    line = stream.getvalue().strip()
    assert line.startswith("! RunTool") and "readFiles (error result, sent to the model)" in line
