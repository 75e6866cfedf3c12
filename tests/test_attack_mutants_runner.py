"""Attacks on tools/mutants.py's verdicts (issue 25): a mutant must count as killed only when its
own tests, run as the mutant's run runs them, pass without it. Each test here builds a tiny project
whose tests fail (or are polluted) regardless of the mutant, so a right runner never says
"killed"; and tools/test_as_user.sh must leave nothing behind in /run."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import tools.mutants as mutants_tool
from tests.process_probes import alive as _alive
from tests.promises import ROOT
from tools.mutations import Mutant


def _run(tmp_path: Path, monkeypatch, mutants: list[Mutant], files: dict[str, str], argv: list[str]) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "lib.py").write_text("X = 1\nY = 1\n")
    for name, text in files.items():
        (copy / name).write_text(text)
    monkeypatch.setattr(mutants_tool, "scratch_copy", lambda: copy)
    monkeypatch.setattr(mutants_tool, "MUTANTS", mutants)
    monkeypatch.setattr(mutants_tool, "CONTROLS", {})
    mutants_tool.main(argv)


def _verdict_line(out: str, name: str) -> str:
    return next((line for line in out.splitlines() if line.startswith("[") and f" {name} " in line), "")


def _main(tmp_path, monkeypatch, capsys, mutants, files, argv) -> str:
    _run(tmp_path, monkeypatch, mutants, files, argv)
    return capsys.readouterr().out


IRRELEVANT = dict(file="lib.py", find="Y = 1", replace="Y = 2", count=1)

PARAMETRIZED = (
    "import pytest\n"
    "@pytest.mark.parametrize('value', [1, 2])\n"
    "def test_value(value):\n"
    "    assert value == 1  # the case 2 fails, with or without any mutant\n"
)


def test_a_parametrized_case_that_fails_anyway_is_a_control_failure_of_the_mutant_naming_the_function(tmp_path, monkeypatch, capsys):
    """The mutant's tests name a test function (file::test_value); the control run's failure is
    reported as its case (file::test_value[2]). covers() does not see the case as part of the
    selection, so the control 'passes' and the mutant, which changes nothing the test reads, is
    counted killed."""
    mutant = Mutant("irrelevant", tests=["test_param.py::test_value"], **IRRELEVANT)
    out = _main(tmp_path, monkeypatch, capsys, [mutant], {"test_param.py": PARAMETRIZED}, ["-j", "1"])
    line = _verdict_line(out, "irrelevant")
    assert "killed" not in line, f"a mutant whose parametrized test fails without it was counted killed:\n{out}"
    assert "CONTROL FAILED: irrelevant" in out, out


def test_a_tests_option_spelled_with_dot_slash_still_gets_its_control(tmp_path, monkeypatch, capsys):
    """`--tests ./test_broken.py` (a hurried user's tab completion): pytest reports the failure as
    test_broken.py::..., which covers() does not match to './test_broken.py', so the control
    'passes' and the mutant is counted killed by a test that fails anyway."""
    mutant = Mutant("irrelevant", tests=["test_ok.py"], **IRRELEVANT)
    files = {"test_ok.py": "def test_ok():\n    pass\n",
             "test_broken.py": "def test_broken_anyway():\n    assert False\n"}
    out = _main(tmp_path, monkeypatch, capsys, [mutant], files, ["-j", "1", "--tests", "./test_broken.py"])
    line = _verdict_line(out, "irrelevant")
    assert "killed" not in line, f"a mutant whose --tests fail without it was counted killed:\n{out}"


ORDER_DEPENDENT = (
    "import os\n"
    "def test_first_leaves_state_behind():\n"
    "    os.environ['ATTACK_LEFT_BEHIND'] = '1'\n"
    "def test_second_fails_after_the_first():\n"
    "    assert 'ATTACK_LEFT_BEHIND' not in os.environ\n"
)


def test_a_test_that_fails_beside_its_neighbours_is_a_control_failure_though_it_passes_alone(tmp_path, monkeypatch, capsys):
    """The control's re-run takes each failing test by itself; the mutant's run takes the mutant's
    whole selection (`-x test_order.py`), where the same test fails again, with or without the
    mutant. The re-run clears the control, so the mutant is counted killed by a failure it did not
    cause: the control must run the tests as the mutant's run does."""
    mutant = Mutant("irrelevant", tests=["test_order.py"], **IRRELEVANT)
    out = _main(tmp_path, monkeypatch, capsys, [mutant], {"test_order.py": ORDER_DEPENDENT}, ["-j", "1"])
    line = _verdict_line(out, "irrelevant")
    assert "killed" not in line, f"a mutant whose own selection fails without it was counted killed:\n{out}"


def test_what_one_mutants_tests_leave_in_the_copy_does_not_kill_the_next_mutant(tmp_path, monkeypatch, capsys):
    """One scratch copy serves mutant after mutant, and only the mutated file is put back: a file
    the first mutant's tests write into the copy (a mutant that breaks a cleanup, a path made
    relative) is still there for the next one, whose tests then fail for a reason of its
    predecessor's making. The second mutant here changes nothing its test reads: it survives."""
    first = Mutant("leaves-a-file", "lib.py", ["test_first.py"], find="X = 1", replace="X = 2", count=1)
    second = Mutant("irrelevant", tests=["test_second.py"], **IRRELEVANT)
    files = {
        "test_first.py": "from pathlib import Path\nimport lib\n"
                         "def test_x():\n"
                         "    if lib.X != 1:\n"
                         "        Path('left-by-a-mutant').touch()\n"
                         "    assert lib.X == 1\n",
        "test_second.py": "from pathlib import Path\n"
                          "def test_nothing_left_over():\n"
                          "    assert not Path('left-by-a-mutant').exists()\n",
    }
    out = _main(tmp_path, monkeypatch, capsys, [first, second], files, ["-j", "1"])
    assert "killed" in _verdict_line(out, "leaves-a-file"), out
    line = _verdict_line(out, "irrelevant")
    assert "killed" not in line, f"a mutant was killed by what the previous mutant's tests left in the copy:\n{out}"


def test_make_test_as_user_leaves_no_folder_behind_in_run():
    """tools/test_as_user.sh keeps the paths it binds back in `mktemp -d /run/pixie-as-user.XXXXXX`
    and never removes it: every `make test-as-user` leaves one more folder in /run (the private
    mount namespace drops the mounts, not the folder). Run here with /run a tmpfs of the test's
    own (a private mount namespace), so other runs on the machine neither add nor hide one, and
    with a -k that selects no test (pytest exits 5): only what the script itself leaves is seen."""
    if os.geteuid() != 0 or not Path("/usr/bin/unshare").exists():
        from tests.conftest import skip_or_fail_in_ci

        skip_or_fail_in_ci("tools/test_as_user.sh needs root and unshare")
    script = (
        'mount -t tmpfs attack-run /run && '
        'PYTEST_ARGS="-k no_test_is_named_this -p no:randomly" tools/test_as_user.sh >/dev/null 2>&1; '
        'echo "exit $?"; ls -1d /run/pixie-as-user.* 2>/dev/null; true'
    )
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = done.stdout.split()
    assert lines[:2] == ["exit", "5"], f"the script did not reach pytest: {done.stdout} {done.stderr}"
    assert not lines[2:], f"tools/test_as_user.sh left {lines[2:]} behind"


KILLED_RUN_SCRIPT = r"""
import sys
from pathlib import Path
import tools.mutants as tm
from tools.mutations import Mutant

marks = Path(sys.argv[1])
hang = sys.argv[2] == "hang"
real_scratch_copy = tm.scratch_copy
TEST = '''
import subprocess, time
from pathlib import Path
import lib

def test_hangs_once_mutated():
    if lib.X == 1:
        return  # the control passes
    if HANG:
        daemon = subprocess.Popen(["setsid", "sleep", "300"])
        Path(MARKS, f"daemon-{daemon.pid}").touch()
        time.sleep(600)
    assert lib.X == 1
'''.replace("MARKS", repr(str(marks))).replace("HANG", repr(hang))

def tiny_copy():
    copy = real_scratch_copy()  # the runner's own copy (in $TMPDIR), plus a tiny project
    (copy / "attack_lib_dir").mkdir()
    (copy / "attack_lib_dir" / "lib.py").write_text("X = 1\n")
    (copy / "attack_lib_dir" / "test_hangs.py").write_text(TEST)
    return copy

tm.MUTANTS = [Mutant("m0", "attack_lib_dir/lib.py", ["attack_lib_dir/test_hangs.py"], find="X = 1", replace="X = 2")]
tm.scratch_copy = tiny_copy
sys.exit(tm.main(["-j", "1"]))
"""


def test_a_runner_killed_outright_leaves_no_scratch_copy_once_the_next_run_ends(tmp_path):
    """kill -9 of `make mutants` (an OOM kill, a CI runner reaping a job) skips its `finally`: the
    reapers get their parent-death SIGTERM and kill the tests, but every scratch copy (a full
    copy of the repository with a venv) stays in /tmp for good — nothing ever removes it, not
    even the next run (three such copies were on this machine when this test was written)."""
    marks = tmp_path / "marks"
    scratch = tmp_path / "tmp"
    marks.mkdir()
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    first = subprocess.Popen([sys.executable, "-c", KILLED_RUN_SCRIPT, str(marks), "hang"], cwd=ROOT, env=env,
                             start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not list(marks.glob("daemon-*")):
            assert first.poll() is None, "tools.mutants ended before its mutant's test started"
            time.sleep(0.05)
        left = [p for p in scratch.iterdir() if p.name.startswith("pixie-mutants-")]
        assert left, "the run made no scratch copy under $TMPDIR"
        first.kill()
        first.wait()
        daemon = int(next(marks.glob("daemon-*")).name.split("-")[1])
        while _alive(daemon):  # the reaper's parent-death signal ends the tests and what they started
            time.sleep(0.05)
        second = subprocess.run([sys.executable, "-c", KILLED_RUN_SCRIPT, str(marks), "pass"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=600)
        assert "m0" in second.stdout, second.stdout + second.stderr
        still = [p.name for p in left if p.exists()]
        assert not still, f"scratch copies of a runner killed outright are still there after the next run: {still}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        for mark in marks.glob("daemon-*"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(mark.name.split("-")[1]), signal.SIGKILL)


def test_the_copys_pixie_runs_when_the_temporary_folder_has_a_space(tmp_path, monkeypatch):
    """TMPDIR="/tmp/my builds" (or one long enough to pass the kernel's shebang limit): the copy's
    re-pointed `pixie` keeps the short `#!/.../.venv/bin/python` form, which cannot hold that path,
    so exec fails (ENOENT) and every test that starts `pixie` fails in the control — each of their
    mutants is reported CONTROL FAILED instead of being tried."""
    spaced = tmp_path / "my builds"
    spaced.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spaced))
    copy = mutants_tool.scratch_copy()
    try:
        assert " " in str(copy)
        pixie = mutants_tool.copy_interpreter(copy).parent / "pixie"
        done = subprocess.run([str(pixie), "--version"], capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin"}, timeout=120)
        assert done.returncode == 0, done.stderr
    except OSError as exc:
        pytest.fail(f"the copy's pixie cannot be started from {copy}: {exc}")
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def test_a_misspelled_mutant_name_beside_a_right_one_is_not_silently_dropped(tmp_path, monkeypatch, capsys):
    """`python -m tools.mutants asl-no-jitter asl-no-jiter`: only a selection that matches no
    mutant at all is refused, so the typo is dropped without a word and the run reports
    '1 of 1 mutants killed', exit 0 — the mutant the user meant never ran."""
    copy = tmp_path / "copy"
    copy.mkdir()
    monkeypatch.setattr(mutants_tool, "scratch_copy", lambda: copy)
    monkeypatch.setattr(mutants_tool, "seed_controls", lambda *args: None)
    monkeypatch.setattr(mutants_tool, "run_one", lambda mutant, copy, tests: ("killed", 0.0, "stand-in"))
    monkeypatch.setattr(mutants_tool, "MUTANTS", [
        Mutant("asl-no-jitter", "lib.py", ["test_x.py"], find="X", replace="Y"),
        Mutant("asl-no-catch", "lib.py", ["test_x.py"], find="X", replace="Z"),
    ])
    try:
        code = mutants_tool.main(["-j", "1", "asl-no-jitter", "asl-no-jiter"])
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    assert code != 0 or "asl-no-jiter" in out.out + out.err, \
        f"a name that matches no mutant was dropped silently (exit {code}):\n{out.out}{out.err}"


def test_one_file_that_fails_to_collect_does_not_clear_the_control_of_every_other_mutant(tmp_path, monkeypatch, capsys):
    """The control runs every chosen mutant's tests in one pytest. A file that fails to collect
    interrupts that pytest before any test runs ("Interrupted: 1 error during collection"), and
    only that file is named as failing: every other mutant's control reads as passed though none
    of its tests ran, so a mutant whose tests fail anyway is counted killed."""
    first = Mutant("broken-file", "lib.py", ["test_a.py"], find="X = 1", replace="X = 2", count=1)
    second = Mutant("irrelevant", tests=["test_b.py"], **IRRELEVANT)
    files = {"test_a.py": "import no_such_module_anywhere\ndef test_a():\n    pass\n",
             "test_b.py": "def test_b_fails_anyway():\n    assert False\n"}
    out = _main(tmp_path, monkeypatch, capsys, [first, second], files, ["-j", "1"])
    line = _verdict_line(out, "irrelevant")
    assert "killed" not in line, f"a mutant whose tests never ran in the control was counted killed:\n{out}"


def test_one_stale_node_id_does_not_fail_the_control_of_every_other_mutant(tmp_path, monkeypatch, capsys):
    """A mutant whose test was renamed (its node id now names nothing) makes pytest refuse the
    whole control run ("ERROR: not found", exit 4, no test run); the runner then marks every
    chosen mutant CONTROL FAILED, so one stale entry leaves a full `make mutants` with no verdict."""
    stale = Mutant("stale", "lib.py", ["test_a.py::test_renamed_long_ago"], find="X = 1", replace="X = 2", count=1)
    fine = Mutant("fine", "lib.py", ["test_b.py"], find="Y = 1", replace="Y = 2", count=1)
    files = {"test_a.py": "def test_a():\n    pass\n",
             "test_b.py": "from lib import Y\ndef test_b():\n    assert Y == 1\n"}
    out = _main(tmp_path, monkeypatch, capsys, [stale, fine], files, ["-j", "1"])
    assert "killed" in _verdict_line(out, "fine"), f"one stale node id cost another mutant its verdict:\n{out}"


def test_test_as_user_runs_when_started_from_its_own_folder():
    """`cd tools && ./test_as_user.sh` (or `../tools/test_as_user.sh` from tests/): the script cd's
    to the checkout, then re-executes itself as "$0" — a path relative to the folder it left — so
    unshare cannot find it (exit 127) and no test runs."""
    if os.geteuid() != 0 or not Path("/usr/bin/unshare").exists():
        from tests.conftest import skip_or_fail_in_ci

        skip_or_fail_in_ci("tools/test_as_user.sh needs root and unshare")
    script = ('mount -t tmpfs attack-run /run && '
              'PYTEST_ARGS="-k no_test_is_named_this -p no:randomly" ./test_as_user.sh >/dev/null 2>&1; echo "exit $?"')
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          cwd=ROOT / "tools", capture_output=True, text=True, timeout=600)
    assert done.stdout.split() == ["exit", "5"], f"started from tools/, the script did not reach pytest: {done.stdout} {done.stderr}"


def test_a_file_chosen_whole_and_one_of_its_tests_chosen_alone_both_get_their_control(tmp_path, monkeypatch, capsys):
    """One mutant names a file, another one test in it (the real mutations do: test_startup.py and
    test_startup.py::test_...): the up-front control must run that file, and both mutants get a
    verdict, not 'no test ran'."""
    whole = Mutant("whole", "lib.py", ["test_a.py"], find="X = 1", replace="X = 2", count=1)
    one = Mutant("one", "lib.py", ["test_a.py::test_x"], find="X = 1", replace="X = 3", count=1)
    other = Mutant("other", "lib.py", ["test_b.py"], find="Y = 1", replace="Y = 2", count=1)
    files = {"test_a.py": "from lib import X\ndef test_x():\n    assert X == 1\ndef test_other():\n    pass\n",
             "test_b.py": "from lib import Y\ndef test_y():\n    assert Y == 1\n"}
    out = _main(tmp_path, monkeypatch, capsys, [whole, one, other], files, ["-j", "1"])
    assert "killed" in _verdict_line(out, "whole") and "killed" in _verdict_line(out, "one"), out


def test_a_mutant_naming_a_parametrized_test_whose_cases_all_pass_is_killed_not_control_failed(tmp_path, monkeypatch, capsys):
    """The control reports the cases (file::test_value[1]); a selection naming the function must
    count them as its own, or the mutant gets 'no test ran'."""
    mutant = Mutant("param", "lib.py", ["test_param.py::test_value"], find="X = 1", replace="X = 2", count=1)
    other = Mutant("other", "lib.py", ["test_b.py"], find="Y = 1", replace="Y = 2", count=1)
    files = {"test_param.py": "import pytest\nfrom lib import X\n@pytest.mark.parametrize('v', [1, 2])\ndef test_value(v):\n    assert X == 1\n",
             "test_b.py": "from lib import Y\ndef test_y():\n    assert Y == 1\n"}
    out = _main(tmp_path, monkeypatch, capsys, [mutant, other], files, ["-j", "1"])
    assert "killed" in _verdict_line(out, "param"), out
