"""The view of an execution as it runs, on stderr (or of a finished one, in `pixie show`).

Plain (stderr not a terminal, or a saved history): one line as a step ends — `✓` with its
duration and what the turn did, `✗` with its error when it failed, `↻` when it failed and will
be retried (attempt n/m and the wait, from the definition's Retry policy).

Live (a terminal): the same lines, and under them a few lines redrawn in place: the step running
now with its elapsed time, the model's text as it streams (dimmed, the last few lines), the tool
calls it is writing, the command being run and the tail of its output. These come from
lambdas.logic.progress events (`on_progress`). Colour unless NO_COLOR is set; ASCII marks where
the terminal's encoding cannot print ✓ ✗ ↻.

Everything a model, a tool or a command wrote is printed through terminal_text.visible."""

from __future__ import annotations

import codecs
import json
import os
import shutil
import sys
import threading
import time
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, TextIO

from pixie.terminal_text import visible

ASL_PATH = Path(__file__).resolve().parent.parent / "statemachine" / "agent.asl.json"
TEXT_LINES = 3  # model text lines kept in the live view
OUTPUT_LINES = 3  # command output lines kept in the live view
TICK_S = 0.1


def _details(event: dict) -> dict:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def _timestamp(event: dict) -> datetime | None:
    value = event.get("timestamp")
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def lambda_error_message(cause: str | None) -> str | None:
    """Lambda reports errors as a JSON cause; the human part is its errorMessage."""
    if not cause:
        return cause
    try:
        parsed = json.loads(cause)
    except (json.JSONDecodeError, TypeError):
        return cause
    return parsed.get("errorMessage", cause) if isinstance(parsed, dict) else cause


# --- the definition's Retry policies --------------------------------------------------------------
@cache
def retry_policies(path: Path = ASL_PATH) -> dict[str, list[dict]]:
    """Task state name -> its Retry list, from the definition (states inside Maps included)."""
    policies: dict[str, list[dict]] = {}

    def walk(states: dict) -> None:
        for name, state in states.items():
            if state.get("Retry"):
                policies[name] = state["Retry"]
            for key in ("ItemProcessor", "Iterator"):
                if isinstance(state.get(key), dict):
                    walk(state[key].get("States", {}))
            for branch in state.get("Branches", []):
                walk(branch.get("States", {}))

    try:
        walk(json.loads(path.read_text(encoding="utf-8")).get("States", {}))
    except (OSError, ValueError):
        pass
    return policies


def _matching_retrier(state: str, error: str) -> int | None:
    for index, retrier in enumerate(retry_policies().get(state, [])):
        names = retrier.get("ErrorEquals", [])
        if error in names or "States.ALL" in names or ("States.TaskFailed" in names and not error.startswith("States.")):
            return index
    return None


# --- how it looks ---------------------------------------------------------------------------------
class Style:
    """Marks and colours for one stream."""

    UNICODE = {"ok": "✓", "fail": "✗", "retry": "↻", "map": "▸", "arrow": "→", "dots": "…", "bar": "│", "dash": "—", "warn": "!"}
    ASCII = {"ok": "+", "fail": "x", "retry": "~", "map": ">", "arrow": "->", "dots": "...", "bar": "|", "dash": "-", "warn": "!"}
    CODES = {"dim": "2", "bold": "1", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}

    def __init__(self, stream: TextIO, colour: bool | None = None) -> None:
        self.marks = self.UNICODE if _can_encode(stream, "".join(self.UNICODE.values())) else self.ASCII
        if colour is None:
            colour = _is_tty(stream) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        self.colour = colour

    def __getitem__(self, mark: str) -> str:
        return self.marks[mark]

    def paint(self, text: str, *codes: str) -> str:
        if not self.colour or not codes:
            return text
        return f"\x1b[{';'.join(self.CODES[c] for c in codes)}m{text}\x1b[0m"


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _can_encode(stream: TextIO, text: str) -> bool:
    encoding = getattr(stream, "encoding", None)
    if not encoding:  # an in-memory stream: str all the way
        return True
    try:
        codecs.lookup(encoding)
        text.encode(encoding)
        return True
    except (LookupError, UnicodeEncodeError):
        return False


def _size(text: str) -> str:
    n = len(text.encode("utf-8", errors="replace"))
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KB"


def _tail_lines(text: str, count: int, width: int) -> list[str]:
    """The last `count` lines of `text`, long lines folded at `width`."""
    folded: list[str] = []
    for line in text.splitlines()[-count:] or [""]:
        line = line.expandtabs(4)
        folded.extend(line[i : i + width] for i in range(0, max(len(line), 1), max(width, 1)))
    return [line for line in folded[-count:]]


# --- the display ----------------------------------------------------------------------------------
class LiveDisplay:
    """Call it with each history event (`display(event)`); give it progress events through
    `on_progress(run_id, kind, data)`; `close()` when the run ends. `live=None` means live
    exactly when the stream is a terminal."""

    def __init__(self, stream: TextIO = sys.stderr, *, live: bool | None = None, colour: bool | None = None) -> None:
        self.stream = stream
        self.style = Style(stream, colour)
        self.live = _is_tty(stream) if live is None else live
        self.started: dict[str, datetime | None] = {}  # state name -> when it was last entered
        self.depth = 0
        self.tool_name: str | None = None
        self._task: str | None = None  # the Task state running now
        self._failures: dict[str, list[int]] = {}  # task -> failures per retrier, this entry
        self._failed: dict[str, str] = {}  # task -> its final error, shown when it exits
        self._lock = threading.RLock()
        # live view
        self._footer_lines = 0
        self._running_since: float | None = None
        self._waiting_until: float | None = None
        self._retry_wait: tuple[float, float] | None = None  # (heard at, seconds)
        self._text = ""
        self._calls: dict[int, dict[str, Any]] = {}
        self._command: str | None = None
        self._output = ""
        self._ticker: threading.Thread | None = None
        self._closed = threading.Event()
        self._paused = False  # the live lines are not drawn while pixie asks a question
        if self.live:
            self._ticker = threading.Thread(target=self._tick, name="pixie-display", daemon=True)
            self._ticker.start()

    # --- output ---------------------------------------------------------------------------------
    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError, RuntimeError):  # the terminal went away (SIGHUP), or a reentrant write
            pass

    def _print(self, text: str) -> None:
        with self._lock:
            self._write(self._clear_footer() + "  " * self.depth + text + "\n" + self._footer())

    def notice(self, text: str) -> None:
        """A line of pixie's own (e.g. `stopping…`), above the live lines."""
        if self.style.marks is Style.ASCII:
            text = text.replace("…", "...").replace("·", "-")
        with self._lock:
            self._write(self._clear_footer() + text + "\n" + self._footer())

    def waiting(self, label: str) -> None:
        """Shows `label` with its elapsed time until the first step starts (live view only)."""
        with self._lock:
            self._task, self._running_since = label, time.monotonic()
            if self.live:
                self._write(self._clear_footer() + self._footer())

    def pause(self, paused: bool = True) -> None:
        """Stops (or resumes) drawing the live lines: what the user types stays on the screen."""
        with self._lock:
            self._write(self._clear_footer())
            self._paused = paused
            if not paused:
                self._write(self._footer())

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._write(self._clear_footer())
            self.live = False

    # --- history events -------------------------------------------------------------------------
    def __call__(self, event: dict) -> None:
        with self._lock:
            self._on_event(event)

    def _on_event(self, event: dict) -> None:
        kind = event.get("type", "")
        details = _details(event)
        if kind.endswith("StateEntered"):
            name = details.get("name", "?")
            self.started[name] = _timestamp(event)
            if kind == "MapStateEntered":
                self._print(self.style.paint(f"{self.style['map']} {name}", "bold"))
                self.depth += 1
            elif kind == "TaskStateEntered":
                self._task = name
                self._failures[name] = []
                self._failed.pop(name, None)
                self._running_since = time.monotonic()
                self._waiting_until = None
                if name == "AgentTurn":
                    self._text, self._calls = "", {}
                if name == "RunTool":
                    self.tool_name = None
                self._command, self._output = None, ""
        elif kind == "TaskScheduled":
            self._waiting_until = None
            try:
                parameters = json.loads(details.get("parameters") or "{}")
            except json.JSONDecodeError:
                parameters = {}
            payload = parameters.get("Payload") if isinstance(parameters, dict) else None
            if isinstance(payload, dict) and "name" in payload:
                self.tool_name = payload.get("name")
        elif kind.endswith("StateExited"):
            self._exited(event, kind, details)
        elif kind in ("TaskFailed", "LambdaFunctionFailed", "TaskTimedOut"):
            self._task_failed(details)
        elif kind in ("ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"):
            message = lambda_error_message(details.get("cause"))
            error = details.get("error") or kind.removeprefix("Execution")
            self._print(self.style.paint(f"{self.style['fail']} {visible(error, one_line=True)}: {visible(message)}", "red"))

    def _task_failed(self, details: dict) -> None:
        name = self._task or "?"
        error = str(details.get("error") or "Error")
        message = visible(lambda_error_message(details.get("cause")) or "", one_line=True)
        if len(message) > 300:
            message = message[:300] + self.style["dots"]
        retrier = _matching_retrier(name, error)
        failures = self._failures.setdefault(name, [])
        if retrier is not None:
            while len(failures) <= retrier:
                failures.append(0)
            failures[retrier] += 1
            policy = retry_policies()[name][retrier]
            max_attempts = int(policy.get("MaxAttempts", 3))
            if failures[retrier] <= max_attempts:
                attempt = sum(failures) + 1
                total = max_attempts + 1
                wait = self._wait_for(policy, failures[retrier])
                self._print(
                    self.style.paint(
                        f"{self.style['retry']} {name} attempt {attempt}/{total} in {wait} {self.style['dash']} "
                        f"{visible(error, one_line=True)}: {message}",
                        "yellow",
                    )
                )
                return
        self._failed[name] = f"{visible(error, one_line=True)}: {message}"

    def _wait_for(self, policy: dict, failure: int) -> str:
        """The wait before the next attempt: as the engine reported it, or the policy's bound."""
        heard = self._retry_wait
        if heard and time.monotonic() - heard[0] < 2.0:
            self._retry_wait = None
            self._waiting_until = time.monotonic() + heard[1]
            return f"{heard[1]:.1f} s"
        interval = float(policy.get("IntervalSeconds", 1)) * float(policy.get("BackoffRate", 2.0)) ** (failure - 1)
        if policy.get("MaxDelaySeconds"):
            interval = min(interval, float(policy["MaxDelaySeconds"]))
        jitter = policy.get("JitterStrategy") == "FULL"
        return f"{'≤ ' if jitter and self.style.marks is Style.UNICODE else '<= ' if jitter else ''}{interval:.0f} s"

    def _exited(self, event: dict, kind: str, details: dict) -> None:
        name = details.get("name", "?")
        start, end = self.started.get(name), _timestamp(event)
        duration = f"{(end - start).total_seconds():.2f}s" if start and end else ""
        if kind == "MapStateExited":
            self.depth = max(self.depth - 1, 0)
            return
        if kind in ("ChoiceStateExited", "SucceedStateExited", "PassStateExited"):
            return
        if kind == "TaskStateExited":
            self._task = None
            self._running_since = None
        if name in self._failed:
            error = self._failed.pop(name)
            self._print(self.style.paint(f"{self.style['fail']} {name:<14} {duration:>7}  {error}", "red"))
            return
        note = ""
        try:
            output = json.loads(details.get("output") or "null")
        except json.JSONDecodeError:
            output = None
        arrow = self.style["arrow"]
        if name == "AgentTurn" and isinstance(output, dict):
            calls = [visible(c.get("name"), one_line=True) for c in output.get("toolCalls") or [] if isinstance(c, dict)]
            note = f"turn {output.get('iteration')}"
            note += f" {arrow} {', '.join(calls)}" if calls else (f" {arrow} summary" if output.get("hasSummary") else f" {arrow} text")
        elif name == "RunTool":
            tool = visible(self.tool_name or "", one_line=True)
            if isinstance(output, dict) and not output.get("ok", True):
                # The step did its job: the call's error went back to the model as its result.
                line = f"{self.style['warn']} {name:<14} {duration:>7}  {tool} (error result, sent to the model)"
                self._print(self.style.paint(line, "yellow"))
                return
            note = tool
        elif name == "CheckResult" and isinstance(output, dict):  # the done-check's verdict
            verdicts = {"passed": "passed", "retry": f"failed {arrow} the model is told and goes on", "failed": "failed"}
            note = verdicts.get(output.get("check"), "")
        elif name == "GetSandboxUrl" and isinstance(output, dict):
            note = visible(output.get("url", ""), one_line=True)
        self._print(f"{self.style.paint(self.style['ok'], 'green')} {name:<14} {duration:>7}  {note}".rstrip())

    # --- progress events (live view) ------------------------------------------------------------
    def on_progress(self, run_id: str, kind: str, data: dict[str, Any]) -> None:
        with self._lock:
            if kind == "model.text":
                self._text = (self._text + str(data.get("text", "")))[-20_000:]
            elif kind == "model.tool_call":
                index = data.get("index", 0)
                call = self._calls.setdefault(index, {"name": "", "size": 0})
                call["name"] += str(data.get("name") or "")
                call["size"] += len(str(data.get("arguments") or ""))
            elif kind == "command.start":
                self._command, self._output = str(data.get("command", "")), ""
            elif kind == "command.output":
                self._output = (self._output + str(data.get("text", "")))[-20_000:]
            elif kind == "command.end":
                code = data.get("exitCode")
                self._output += f"\n[{'timed out' if data.get('timedOut') else f'exit {code}'}]"
            elif kind == "retry.wait":
                self._retry_wait = (time.monotonic(), float(data.get("seconds", 0)))
            else:
                return
            if self.live:
                self._write(self._clear_footer() + self._footer())

    # --- the live lines -------------------------------------------------------------------------
    def _width(self) -> int:
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = shutil.get_terminal_size((80, 24)).columns
        return max(20, columns or 80)  # a terminal that reports no size is given 80

    def _footer_content(self) -> list[str]:
        if self._running_since is None or self._task is None:
            return []
        width = self._width() - 1
        style = self.style
        now = time.monotonic()
        what = f" {visible(self.tool_name, one_line=True)}" if self._task == "RunTool" and self.tool_name else ""
        head = "  " * self.depth + f"{style['dots']} {self._task}{what} {now - self._running_since:5.1f}s"
        if self._waiting_until and self._waiting_until > now:
            head += f"  (next attempt in {self._waiting_until - now:.1f} s)"
        lines = [style.paint(head[:width], "cyan")]
        indent = "  " * self.depth + "  "
        room = max(width - len(indent) - 2, 10)
        if self._task == "AgentTurn":
            if self._text:
                for line in _tail_lines(visible(self._text), TEXT_LINES, room):
                    lines.append(indent + style.paint(f"{style['bar']} {line}", "dim"))
            for call in self._calls.values():
                name = visible(call["name"], one_line=True) or "?"
                lines.append(indent + style.paint(f"{style['arrow']} {name} ({call['size']} chars)"[:room], "dim"))
        if self._command is not None:
            lines.append(indent + f"$ {visible(self._command, one_line=True)}"[:room])
            if self._output:
                for line in _tail_lines(visible(self._output), OUTPUT_LINES, room):
                    lines.append(indent + style.paint(f"{style['bar']} {line}", "dim"))
        return lines

    def _footer(self) -> str:
        if not self.live or self._paused:
            return ""
        lines = self._footer_content()
        self._footer_lines = len(lines)
        return "\n".join(lines)

    def _clear_footer(self) -> str:
        """Erases the live lines (the cursor sits at the end of the last one)."""
        if not self.live or not self._footer_lines:
            return ""
        erase = "\r\x1b[2K" + "\x1b[1A\x1b[2K" * (self._footer_lines - 1)
        self._footer_lines = 0
        return erase

    def _tick(self) -> None:
        while not self._closed.wait(TICK_S):
            with self._lock:
                if self.live and self._running_since is not None:
                    self._write(self._clear_footer() + self._footer())
