"""tools/mutants.py, the `make mutants` runner (issue 25): a mutant that changes nothing is not
applied; a mutant is killed only when its tests pass without it (the control); a mutant's tests
leave no process behind, setsid ones included; Ctrl-C and SIGTERM end the run cleanly; and the
`pixie` a test starts with an environment of its own runs the mutated copy."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tools.mutants as mutants_tool
from tests.process_probes import alive as _alive
from tests.promises import ROOT
from tools.mutations import Mutant


def test_a_mutant_that_changes_nothing_is_not_applied():
    identity = Mutant("identity", "x.py", [], find="X = 1", replace="X = 1", count=1)
    with pytest.raises(ValueError):
        mutants_tool.mutate(identity, "X = 1\n")


def test_a_mutant_whose_tests_fail_without_it_is_not_counted_killed(tmp_path):
    """No control run: tests that fail in the scratch copy anyway (a missing tool, a file the copy
    lacks, a flaky test) make every mutant mapped to them 'killed'."""
    (tmp_path / "lib.py").write_text("X = 1\n")
    (tmp_path / "test_always_fails.py").write_text("def test_broken_anyway():\n    assert False\n")
    mutant = Mutant("irrelevant", "lib.py", ["test_always_fails.py"], find="X = 1", replace="X = 2", count=1)
    verdict, _, detail = mutants_tool.run_one(mutant, tmp_path, mutant.tests)
    assert verdict != "killed", f"a mutant whose tests fail without it was counted killed ({detail})"


def test_a_timed_out_mutant_leaves_no_process_behind(tmp_path, monkeypatch):
    """The pytest of a mutant that hangs is killed at TIMEOUT_S, but what it started (a pixie
    server, a sandbox command, Chromium) keeps running, in a copy the next mutant reuses."""
    pid_file = tmp_path / "grandchild.pid"
    (tmp_path / "test_hangs.py").write_text(
        "import subprocess, time\n"
        "def test_hangs():\n"
        f"    child = subprocess.Popen(['sleep', '300'])\n"
        f"    open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "    time.sleep(600)\n"
    )
    monkeypatch.setattr(mutants_tool, "TIMEOUT_S", 20)
    code, detail = mutants_tool.run_tests(tmp_path, ["test_hangs.py"])
    assert (code, detail) == (-1, "timeout")
    assert pid_file.exists(), "the hanging test did not start its child within the timeout"
    pid = int(pid_file.read_text())
    try:
        assert not _alive(pid), f"process {pid} started by the timed-out mutant's tests still runs"
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


CTRL_C_SCRIPT = r"""
import subprocess, sys, tempfile
from pathlib import Path
import tools.mutants as tm
from tools.mutations import Mutant

marks = Path(sys.argv[1])
tm.MUTANTS = [Mutant(f"m{i}", "README.md", ["tests"], find="pixie", replace="PIXIE") for i in range(6)]
tm.scratch_copy = lambda: Path(tempfile.mkdtemp(prefix="copy-", dir=marks))

def fake_run_one(mutant, copy, tests):
    (marks / f"started-{mutant.name}").touch()
    subprocess.run(["sleep", "120"])  # a mutant's pytest, in the same process group
    return "killed", 0.0, ""

tm.run_one = fake_run_one
sys.exit(tm.main(["-j", "2"]))
"""


def test_ctrl_c_stops_make_mutants_and_starts_no_further_mutant(tmp_path):
    """Ctrl-C (SIGINT to the foreground process group) must end the run: no queued mutant starts
    afterwards, and the scratch copies are removed."""
    marks = tmp_path / "marks"
    marks.mkdir()
    process = subprocess.Popen([sys.executable, "-c", CTRL_C_SCRIPT, str(marks)], cwd=ROOT,
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not ((marks / "started-m0").exists() and (marks / "started-m1").exists()):
            assert process.poll() is None, "tools.mutants ended before its first mutants started"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)
        # Either the run ends (right) or a queued mutant starts after the Ctrl-C (wrong).
        while process.poll() is None and not (marks / "started-m2").exists():
            time.sleep(0.05)
        started_after = sorted(p.name for p in marks.glob("started-*") if p.name not in ("started-m0", "started-m1"))
        assert not started_after, f"after Ctrl-C, tools.mutants went on to start {started_after}"
        assert process.wait(timeout=120) != 0
        assert not list(marks.glob("copy-*")), "scratch copies left behind after Ctrl-C"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_sigterm_to_make_mutants_leaves_no_scratch_copy_behind(tmp_path):
    """A cancelled CI job (SIGTERM) ends tools.mutants without its `finally`: each worker's full
    copy of the repository stays in /tmp."""
    marks = tmp_path / "marks"
    marks.mkdir()
    process = subprocess.Popen([sys.executable, "-c", CTRL_C_SCRIPT, str(marks)], cwd=ROOT,
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not ((marks / "started-m0").exists() and (marks / "started-m1").exists()):
            assert process.poll() is None, "tools.mutants ended before its first mutants started"
            time.sleep(0.05)
        process.terminate()
        process.wait(timeout=120)
        assert not list(marks.glob("copy-*")), "scratch copies left behind after SIGTERM"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


SCRUBBED_ENV_TEST = '''
import subprocess, sys
from pathlib import Path

def test_a_pixie_started_with_a_scrubbed_environment_runs_this_copy():
    # As tests/test_console_api.py starts `pixie show`: env={"PIXIE_HOME": ..., "PATH": "/usr/bin:/bin"}.
    done = subprocess.run([str(Path(sys.executable).parent / "pixie"), "--version"], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin"}, timeout=120)
    assert "from-the-scratch-copy" in done.stderr, done.stderr
'''


def test_a_mutant_reaches_the_pixie_a_test_starts_with_a_scrubbed_environment():
    """The scratch copy is found through PYTHONPATH only; a test that starts `pixie` with an
    environment of its own (tests/test_console_api.py, test_console_approvals.py,
    test_console_browser.py do) runs the developer's editable install (.venv -> the checkout),
    so a mutant there is never exercised and the verdict depends on the developer's .venv."""
    copy = mutants_tool.scratch_copy()
    try:
        init = copy / "pixie" / "__init__.py"
        init.write_text(init.read_text() + "\nimport sys as _s; _s.stderr.write('from-the-scratch-copy\\n')\n")
        (copy / "tests" / "test_scrubbed_env_probe.py").write_text(SCRUBBED_ENV_TEST)
        code, detail = mutants_tool.run_tests(copy, ["tests/test_scrubbed_env_probe.py"])
        assert code == 0, f"the pixie a scrubbed-environment test starts did not run the copy's code: {detail}"
    finally:
        shutil.rmtree(copy, ignore_errors=True)




def test_a_process_a_mutant_started_in_a_session_of_its_own_is_gone_when_its_tests_pass(tmp_path):
    """A test that daemonizes something (setsid, double fork: `pixie open`, a sandbox) and passes:
    the daemon must not outlive the mutant's pytest."""
    pid_file = tmp_path / "daemon.pid"
    (tmp_path / "test_daemonizes.py").write_text(
        "import subprocess\n"
        "def test_starts_a_daemon():\n"
        f"    subprocess.run(['sh', '-c', 'setsid sleep 300 & echo $! > {pid_file}'], check=True)\n"
    )
    assert mutants_tool.run_tests(tmp_path, ["test_daemonizes.py"])[0] == 0
    pid = int(pid_file.read_text())
    try:
        assert not _alive(pid), f"the daemon {pid} outlived the tests that started it"
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _tiny_project(root: Path) -> Path:
    root.mkdir()
    (root / "lib.py").write_text("X = 1\nY = 1\n")
    (root / "test_x.py").write_text("from lib import X\ndef test_x():\n    assert X == 1\n")
    (root / "test_broken.py").write_text("def test_broken_anyway():\n    assert False\n")
    return root


def test_make_mutants_reports_a_mutant_whose_tests_fail_anyway_and_kills_the_others(tmp_path, monkeypatch, capsys):
    """One control run up front: the mutant mapped to a test that fails without it is reported as
    CONTROL FAILED, naming that test, and fails the run; the other mutant is killed."""
    made = iter([_tiny_project(tmp_path / "copy-a"), _tiny_project(tmp_path / "copy-b")])
    monkeypatch.setattr(mutants_tool, "scratch_copy", lambda: next(made))
    monkeypatch.setattr(mutants_tool, "MUTANTS", [
        Mutant("x-changed", "lib.py", ["test_x.py"], find="X = 1", replace="X = 2", count=1),
        Mutant("y-changed", "lib.py", ["test_broken.py"], find="Y = 1", replace="Y = 2", count=1),
    ])
    monkeypatch.setattr(mutants_tool, "CONTROLS", {})
    assert mutants_tool.main(["-j", "2"]) == 1
    out = capsys.readouterr().out
    assert "control:" in out and " min" in out.split("control:", 1)[1].splitlines()[0]
    assert "x-changed" in out and "killed" in out.split("x-changed", 1)[1].splitlines()[0]
    assert "CONTROL FAILED: y-changed" in out and "test_broken.py::test_broken_anyway" in out.split("CONTROL FAILED: y-changed", 1)[1]
    assert not (tmp_path / "copy-a").exists() and not (tmp_path / "copy-b").exists()


def test_a_test_that_fails_only_in_the_first_control_run_costs_no_mutant(tmp_path, monkeypatch, capsys):
    """The control runs every test at once (-n): a test that fails there but passes when run
    again by itself (a loaded machine) leaves its mutant to be killed, not reported."""
    copy = _tiny_project(tmp_path / "copy")
    (copy / "test_x.py").write_text(
        "from pathlib import Path\nfrom lib import X\n"
        "def test_x():\n"
        "    first = not Path('ran-once').exists()\n"
        "    Path('ran-once').touch()\n"
        "    assert not first and X == 1\n"
    )
    monkeypatch.setattr(mutants_tool, "scratch_copy", lambda: copy)
    monkeypatch.setattr(mutants_tool, "MUTANTS", [
        Mutant("x-changed", "lib.py", ["test_x.py"], find="X = 1", replace="X = 2", count=1)])
    monkeypatch.setattr(mutants_tool, "CONTROLS", {})
    assert mutants_tool.main(["-j", "1"]) == 0
    out = capsys.readouterr().out
    assert "passed when run again by themselves" in out and "1 of 1 mutants killed" in out


REAL_RUN_SCRIPT = r"""
import sys, tempfile
from pathlib import Path
import tools.mutants as tm
from tools.mutations import Mutant

marks = Path(sys.argv[1])
HANGS = '''
import os, subprocess, time
from pathlib import Path
import lib

def test_hangs_once_mutated():
    if lib.X == 1:
        return  # the control passes
    daemon = subprocess.Popen(["setsid", "sleep", "300"])
    Path(MARKS, f"daemon-{daemon.pid}").touch()
    time.sleep(600)
'''.replace("MARKS", repr(str(marks)))

def tiny_copy():
    copy = Path(tempfile.mkdtemp(prefix="copy-", dir=marks))
    (copy / "lib.py").write_text("X = 1\n")
    (copy / "test_hangs.py").write_text(HANGS)
    return copy

tm.MUTANTS = [Mutant(f"m{i}", "lib.py", ["test_hangs.py"], find="X = 1", replace="X = 2") for i in range(4)]
tm.scratch_copy = tiny_copy
sys.exit(tm.main(["-j", "2"]))
"""


def test_ctrl_c_during_real_mutants_kills_what_their_tests_started_in_sessions_of_their_own(tmp_path):
    """The real runner, not a stand-in: two mutants' tests each start a setsid daemon and hang;
    Ctrl-C ends the run, the daemons are gone, no further mutant starts, no copy stays."""
    marks = tmp_path / "marks"
    marks.mkdir()
    process = subprocess.Popen([sys.executable, "-c", REAL_RUN_SCRIPT, str(marks)], cwd=ROOT,
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while len(list(marks.glob("daemon-*"))) < 2:
            assert process.poll() is None, "tools.mutants ended before its mutants' tests started"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=120) == 128 + signal.SIGINT
        daemons = [int(p.name.split("-")[1]) for p in marks.glob("daemon-*")]
        assert len(daemons) == 2, "a mutant started after Ctrl-C"
        assert not [pid for pid in daemons if _alive(pid)], "a daemon a mutant's tests started outlived Ctrl-C"
        assert not list(marks.glob("copy-*")), "scratch copies left behind after Ctrl-C"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for mark in marks.glob("daemon-*"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(mark.name.split("-")[1]), signal.SIGKILL)
