"""Prompts from standard input and from a file; --json output a terminal cannot be tricked by."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
