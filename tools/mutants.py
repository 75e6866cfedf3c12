"""`make mutants`: break pixie on purpose, one named mutation at a time, and check that the tests
notice. Each mutant (tools/mutations.py) edits one file in a scratch copy of the repository — a
find/replace in Python code, or an edit of the parsed JSON of agent.asl.json — then runs the test
files mapped to it. A mutant is *killed* when those tests fail, *survived* when they pass. A
control run first runs the chosen mutants' tests on the unmutated copy: a mutant whose tests fail
without it proves nothing and is reported as CONTROL FAILED, naming the failing tests. The exit
code is non-zero when any mutant survived, could not be applied (its code moved: update the
entry), or its control failed. Ctrl-C or SIGTERM stops the run: no further mutant starts, the
running ones are killed with everything they started, the scratch copies are removed.

    python -m tools.mutants                 # every mutant
    python -m tools.mutants asl-no-jitter   # only these (names or fnmatch patterns)
    python -m tools.mutants --list
    python -m tools.mutants --tests tests/test_promises_durability.py asl-no-jitter
                                            # other tests for the chosen mutants
    python -m tools.mutants -j 1            # one at a time (default: one per core, each in
                                            # its own scratch copy; MUTANTS_JOBS also sets it)
"""

from __future__ import annotations

import argparse
import contextlib
import concurrent.futures
import fnmatch
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import venv
import xml.etree.ElementTree as ElementTree
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.mutations import MUTANTS, Mutant  # noqa: E402
from tools.reaper import children  # noqa: E402

TIMEOUT_S = 900  # a mutant whose tests hang this long counts as killed (a hang is noticed)
CONTROL_TIMEOUT_S = 3600  # the control run: every chosen mutant's tests at once
REAPER = ROOT / "tools" / "reaper.py"
PYTEST_ARGS = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly"]

# Set by SIGINT / SIGTERM: no further test run starts, and the running ones are terminated.
STOPPING = threading.Event()
RUNNING: set[subprocess.Popen] = set()
# Control results, (copy, test selection) -> run_tests' (code, detail) on the unmutated copy.
CONTROLS: dict[tuple[str, tuple[str, ...]], tuple[int, str]] = {}


COPY_PREFIX = "pixie-mutants-"


def scratch_copy() -> Path:
    """The tracked and untracked-but-not-ignored files of the repository, in a temporary folder
    named after this runner's pid (remove_abandoned_copies() clears those of a dead runner)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    target = Path(tempfile.mkdtemp(prefix=f"{COPY_PREFIX}{os.getpid()}-"))
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def remove_abandoned_copies() -> None:
    """Removes the scratch copies of runners no longer alive (killed outright: kill -9, an OOM kill
    skips their `finally`). A copy is `pixie-mutants-<runner pid>-*` in the temporary folder."""
    folder = Path(tempfile.gettempdir())
    for copy in folder.glob(f"{COPY_PREFIX}*-*"):
        owner = copy.name[len(COPY_PREFIX):].split("-", 1)[0]
        if owner.isdigit() and int(owner) != os.getpid() and not Path(f"/proc/{owner}").exists():
            shutil.rmtree(copy, ignore_errors=True)


def snapshot(copy: Path) -> dict[str, bytes]:
    """Every file of a fresh `copy` (its .venv aside), to put it back between mutants."""
    return {str(path.relative_to(copy)): path.read_bytes() for path in _files(copy)}


def _files(copy: Path) -> list[Path]:
    found = []
    for folder, dirs, names in os.walk(copy):
        if Path(folder) == copy and ".venv" in dirs:
            dirs.remove(".venv")  # made by copy_interpreter, not by any test
        found += [Path(folder) / name for name in names]
        found += [Path(folder) / name for name in dirs if (Path(folder) / name).is_symlink()]
    return found


def restore(copy: Path, files: dict[str, bytes]) -> None:
    """Puts `copy` back as snapshot() saw it: what a mutant's tests wrote, changed or removed in it
    (a mutant breaking a cleanup) must not fail the next mutant's tests. ~2 MB, 230 files: cheap."""
    for path in _files(copy):
        name = str(path.relative_to(copy))
        if name not in files:
            path.unlink()
        elif path.is_symlink() or path.read_bytes() != files[name]:
            path.unlink()
            path.write_bytes(files[name])
    for folder, dirs, _ in os.walk(copy, topdown=False):
        for name in dirs:
            with contextlib.suppress(OSError):
                (Path(folder) / name).rmdir()  # only the empty ones (those a test made)
    for name, content in files.items():
        path = copy / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)


def copy_interpreter(copy: Path) -> Path:
    """A Python for `copy`'s tests whose imports and `pixie` script resolve to the copy.

    Tests start `Path(sys.executable).parent / "pixie"` with an environment of their own (no
    PYTHONPATH); with this interpreter's Python that would be the developer's editable install,
    the unmutated checkout. So the copy gets a light venv of its own (`copy/.venv`, ignored by
    git like the checkout's, made once per copy): a .pth puts the copy first on sys.path, then
    adds this interpreter's site-packages (the packages, and the editable finder, which comes
    after the path entries); its bin/ holds this interpreter's console scripts, re-pointed at it."""
    env_dir = copy / ".venv"
    python = env_dir / "bin" / "python"
    if python.exists():
        return python
    venv.EnvBuilder(symlinks=True, with_pip=False).create(env_dir)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_dirs = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (env_dir / "lib" / version / "site-packages" / "_pixie_mutants_copy.pth").write_text(
        f"{copy}\n" + "".join(f"import site; site.addsitedir({d!r})\n" for d in site_dirs), encoding="utf-8")
    own_bin = Path(sys.prefix) / "bin"
    if own_bin.resolve() != (Path(sys.base_prefix) / "bin").resolve():  # this Python is a venv
        for script in own_bin.iterdir():
            target = env_dir / "bin" / script.name
            if target.exists() or script.name.startswith(("python", "activate", "deactivate")) or not script.is_file():
                continue
            with script.open("rb") as handle:
                head = handle.read(1024)
            own_python = str(own_bin / "python").encode()
            if head.startswith(b"#!") and own_python in head:
                # `#!/.../bin/python`, or pip's `#!/bin/sh` + `exec "/.../bin/python"`; written in
                # the second form always: it holds a path with spaces or past the kernel's shebang
                # length (pip's own choice for such paths).
                lines = script.read_bytes().split(b"\n")
                skip = 3 if lines[0] == b"#!/bin/sh" and lines[1].startswith(b"'''exec'") else 1
                quoted = "".join("\\" + c if c in '"\\$`' else c for c in str(python))
                header = f"#!/bin/sh\n'''exec' \"{quoted}\" \"$0\" \"$@\"\n' '''".encode()
                target.write_bytes(b"\n".join([header, *lines[skip:]]))
                target.chmod(0o755)
            else:
                target.symlink_to(script)
    return python


def mutate(mutant: Mutant, text: str) -> str:
    if mutant.edit_json is not None:
        document = json.loads(text)
        mutant.edit_json(document)
        mutated = json.dumps(document, indent=2) + "\n"
        if json.loads(mutated) == json.loads(text):
            raise ValueError("the JSON edit changed nothing")
        return mutated
    found = text.count(mutant.find)
    expected = mutant.count if mutant.count is not None else max(found, 1)
    if found == 0 or found != expected:
        raise ValueError(f"expected {expected} occurrence(s) of {mutant.find!r} in {mutant.file}, found {found}")
    mutated = text.replace(mutant.find, mutant.replace)
    if mutated == text:
        raise ValueError(f"replacing {mutant.find!r} with {mutant.replace!r} changes nothing")
    return mutated


def failures(output: str) -> list[str]:
    """The node ids pytest's short summary names as failed or in error."""
    return list(dict.fromkeys(line.split(" ", 1)[1].split(" - ", 1)[0] for line in output.splitlines()
                              if line.startswith(("FAILED ", "ERROR "))))


def pytest_in(copy: Path, arguments: list[str], timeout: float) -> tuple[int, str, str]:
    """Runs pytest with `arguments` in `copy`: (exit code, stdout, stderr); code -1 on timeout, -2
    when stopped. pytest runs under tools/reaper.py in a session of its own: a Ctrl-C reaches this
    process only, and whatever the tests started (daemons, setsid sandboxes, browsers) is killed
    when pytest ends, times out or is stopped."""
    python = copy_interpreter(copy)
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1", "VIRTUAL_ENV": str(python.parent.parent),
           "PATH": os.pathsep.join([str(python.parent), os.environ.get("PATH", os.defpath)])}
    command = [str(python), "-m", "pytest", *PYTEST_ARGS, *arguments]
    process = subprocess.Popen([sys.executable, str(REAPER), *command], cwd=copy, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    RUNNING.add(process)
    try:
        if STOPPING.is_set():  # the signal came while this was starting: the handler missed it
            process.terminate()
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.terminate()  # the reaper kills pytest and everything it started, then exits
            stdout, stderr = process.communicate()
            return -1, stdout, stderr
    finally:
        RUNNING.discard(process)
    return (-2 if STOPPING.is_set() else process.returncode), stdout, stderr


def run_tests(copy: Path, tests: list[str]) -> tuple[int, str]:
    """`tests` in `copy`, stopping at the first failure: (exit code, the first failure or the last
    line of output), (-1, "timeout") or (-2, "stopped")."""
    code, stdout, stderr = pytest_in(copy, ["-x", *tests], TIMEOUT_S)
    if code < 0:
        return code, {-1: "timeout", -2: "stopped"}[code]
    failed = failures(stdout)
    return code, (f"FAILED {failed[0]}" if failed else stdout.strip().splitlines()[-1] if stdout.strip() else stderr[-500:])


def control(copy: Path, tests: list[str]) -> tuple[int, str]:
    """`tests` on the unmutated `copy`, once per (copy, selection); main() seeds this from one run
    of every chosen mutant's tests."""
    key = (str(copy), tuple(tests))
    if key not in CONTROLS:
        CONTROLS[key] = run_tests(copy, tests)
    return CONTROLS[key]


def run_one(mutant: Mutant, copy: Path, tests: list[str]) -> tuple[str, float, str]:
    """Applies `mutant` to `copy`, runs its tests, puts the file back: (verdict, seconds, detail).
    Killed only when the same tests pass on the unmutated copy (the control)."""
    path = copy / mutant.file
    start = time.monotonic()
    try:
        original = path.read_text(encoding="utf-8")
        mutated = mutate(mutant, original)
    except (OSError, ValueError, KeyError, IndexError, StopIteration) as exc:
        return "NOT APPLIED", 0.0, str(exc)
    code, detail = control(copy, tests)
    if code == -2:
        return "STOPPED", time.monotonic() - start, detail
    if code != 0:
        return "CONTROL FAILED", time.monotonic() - start, f"fails without the mutant: {detail}"
    path.write_text(mutated, encoding="utf-8")
    try:
        code, detail = run_tests(copy, tests)
    finally:
        path.write_text(original, encoding="utf-8")
    # pytest: 1 = tests failed; 0 = all passed; anything else (no tests, usage) is an error.
    verdict = {0: "SURVIVED", 1: "killed", -1: "killed", -2: "STOPPED"}.get(code, "ERROR")
    return verdict, time.monotonic() - start, detail


def covers(selection: str, node: str) -> bool:
    """Whether pytest argument `selection` (a folder, file or node id) runs `node`, or `node` (a
    file whose collection failed) holds `selection`."""
    return (node == selection or node.startswith((selection + "::", selection + "[", selection.rstrip("/") + "/"))
            or selection.startswith(node + "::"))


def normalise(selection: str, copy: Path) -> str:
    """`selection` as the repo-relative node id pytest reports: `./tests/x.py` and an absolute path
    into the checkout (or the copy) name the same tests as `tests/x.py`."""
    path, sep, rest = selection.partition("::")
    for base in (copy, ROOT):
        if os.path.isabs(path) and Path(os.path.normpath(path)).is_relative_to(base):
            path = os.path.relpath(os.path.normpath(path), base)
            break
    else:
        path = os.path.normpath(path) if path not in ("", ".") else path
    return path + sep + rest


def outcomes(report: Path) -> dict[str, bool]:
    """A pytest --junitxml report (family xunit1, which names each case's file): node id -> passed
    (or skipped). A file that failed to collect is its path -> False."""
    found: dict[str, bool] = {}
    try:
        cases = ElementTree.parse(report).getroot().iter("testcase")
    except (OSError, ElementTree.ParseError):
        return found
    for case in cases:
        file, classname, name = case.get("file", ""), case.get("classname", ""), case.get("name", "")
        failed = any(case.find(tag) is not None for tag in ("failure", "error"))
        module = file[:-3].replace("/", ".") if file.endswith(".py") else file
        if not classname and not file:
            continue
        if classname == "" or (not classname.startswith(module) and file):  # a collection error
            node = file or name
        else:
            classes = classname[len(module):].strip(".")
            node = "::".join(filter(None, [file, *classes.split(".")] if classes else [file])) + "::" + name
        found[node] = found.get(node, True) and not failed
    return found


def seed_controls(copies: list[Path], selections: list[list[str]], jobs: int) -> None:
    """One control run of every selection's tests at once (pytest -n jobs, no -x, collection errors
    do not stop it) in the first copy; its --junitxml report says, per test, whether it ran and
    passed. A selection of which no test ran (a stale node id, a file that does not collect) fails
    its control; one with a failing test gets its control run again as its mutant's run runs it (the
    whole selection, -x: a test that fails only beside its neighbours fails there too; one that
    failed only on a loaded machine passes). Prints the time it took."""
    union = list(dict.fromkeys(test for tests in selections for test in tests))
    # A selection inside another (a test of a file also chosen whole) goes; never both of them.
    union = [t for t in union if not any(t != u and t.startswith((u + "::", u.rstrip("/") + "/")) for u in union)]
    began = time.monotonic()
    refused: list[str] = []  # node ids pytest refuses outright ("not found"): no test ran for them
    with tempfile.TemporaryDirectory(prefix="pixie-mutants-control-") as folder:
        report = Path(folder) / "control.xml"
        while True:
            arguments = [*(["-n", str(jobs)] if jobs > 1 else []), "--continue-on-collection-errors",
                         f"--junitxml={report}", "-o", "junit_family=xunit1", *[t for t in union if t not in refused]]
            code, stdout, stderr = pytest_in(copies[0], arguments, CONTROL_TIMEOUT_S)
            if code < 0:
                print(f"control: {'timeout' if code == -1 else 'stopped'} after {(time.monotonic() - began) / 60:.1f} min", flush=True)
                return  # each mutant runs its own control (or, stopped, none)
            missing = [normalise(line.split("not found:", 1)[1].strip(), copies[0])
                       for line in (stdout + stderr).splitlines() if "ERROR: not found:" in line]
            missing = [t for t in union if t not in refused and any(t == m or covers(t, m) for m in missing)]
            if code != 4 or not missing:
                break
            refused += missing
        results = outcomes(report)
    last = stdout.strip().splitlines()[-1] if stdout.strip() else stderr[-500:]
    verdicts: dict[tuple[str, ...], tuple[int, str]] = {}
    again_passed = 0
    for tests in dict.fromkeys(map(tuple, selections)):
        ran = {node: passed for node, passed in results.items() if any(covers(t, node) for t in tests)}
        if not ran or any(not any(covers(t, node) or covers(node, t) for node in ran) for t in tests):
            verdicts[tests] = (4, f"no test of {' '.join(tests)} ran (not found, or not collected)")
        elif all(ran.values()):
            verdicts[tests] = (0, "passes")
        else:
            rerun = run_tests(copies[0], list(tests))
            if rerun[0] == -2:
                return
            again_passed += rerun[0] == 0
            verdicts[tests] = rerun if rerun[0] != 0 else (0, "passes when run again as its mutant's run runs it")
    failing = [f"{' '.join(t)}: {d}" for t, (c, d) in verdicts.items() if c != 0]
    minutes = (time.monotonic() - began) / 60
    if again_passed:
        last += f"; {again_passed} selection(s) with failing tests passed when run again by themselves"
    print(f"control: the chosen mutants' tests on the unmutated copy, {minutes:.1f} min: "
          + (f"{len(failing)} failing: {'; '.join(failing)}" if failing else last), flush=True)
    for tests, result in verdicts.items():
        for copy in copies:
            CONTROLS[(str(copy), tests)] = result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mutants", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="mutants to run (names or patterns); default all")
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests")
    parser.add_argument("--tests", action="append", metavar="TEST", help="run this test (file or node id) instead of each mutant's own; repeatable")
    parser.add_argument("-j", "--jobs", type=int, default=int(os.environ.get("MUTANTS_JOBS", 0)) or os.cpu_count() or 1,
                        help="mutants run at once, each in a scratch copy of its own (default: one per core)")
    args = parser.parse_args(argv)

    chosen = [m for m in MUTANTS if not args.names or any(fnmatch.fnmatch(m.name, p) for p in args.names)]
    if args.list:
        for m in chosen:
            print(f"{m.name:40} {m.file:40} {' '.join(m.tests)}")
        return 0
    unmatched = [p for p in args.names if not any(fnmatch.fnmatch(m.name, p) for m in MUTANTS)]
    if unmatched:  # a typo beside a right name must not drop the mutant the user meant
        parser.error(f"no mutant matches {' '.join(unmatched)} (see --list)")

    jobs = max(1, min(args.jobs, len(chosen)))
    print(f"{len(chosen)} mutants, {jobs} at a time", flush=True)
    received: list[int] = []

    def stop(signum, frame):
        """Ctrl-C / SIGTERM: no further mutant starts; the running ones end now. A reaper gets
        SIGTERM (it then kills its pytest and all it started), any other child SIGKILL."""
        received.append(signum)
        STOPPING.set()
        for pid in children(os.getpid()):
            try:
                reaper = str(REAPER).encode() in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                os.kill(pid, signal.SIGTERM if reaper else signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError):
                pass

    def block_stop_signals() -> None:
        # In the workers (and what they start): the signals go to the main thread, whose handler
        # sets STOPPING before any mutant's process ends, so a worker cannot start another first.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    # One scratch copy per worker: a worker takes a free copy, mutates one file, runs the tests and
    # puts the file back before handing the copy on, so mutants never see each other's edits.
    copies: queue.Queue[Path] = queue.Queue()
    made: list[Path] = []
    pristine: dict[Path, dict[str, bytes]] = {}
    results: dict[str, tuple[str, float, str]] = {}
    began = time.monotonic()
    width = len(str(len(chosen)))

    def work(mutant: Mutant) -> tuple[str, float, str] | None:
        if STOPPING.is_set():
            return None
        copy = copies.get()
        try:
            return None if STOPPING.is_set() else run_one(mutant, copy, selection(mutant))
        finally:
            if not STOPPING.is_set():
                restore(copy, pristine[copy])
            copies.put(copy)

    def selection(mutant: Mutant) -> list[str]:
        return [normalise(test, made[0]) for test in args.tests or mutant.tests]

    try:
        remove_abandoned_copies()
        while len(made) < jobs and not STOPPING.is_set():
            made.append(scratch_copy())
            pristine[made[-1]] = snapshot(made[-1])
            copies.put(made[-1])
        if not STOPPING.is_set():
            seed_controls(made, [selection(m) for m in chosen], jobs)
            restore(made[0], pristine[made[0]])
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs, initializer=block_stop_signals) as pool:
            pending = {pool.submit(work, m): m for m in chosen}
            for done in concurrent.futures.as_completed(pending):
                mutant = pending[done]
                if done.result() is None:
                    continue
                verdict, seconds, detail = results[mutant.name] = done.result()
                print(f"[{len(results):{width}}/{len(chosen)}] {mutant.name:40} {verdict:8} {seconds:6.1f}s  {detail}", flush=True)
    except Exception:
        if not STOPPING.is_set():  # else: a consequence of the stop (a killed git, say)
            raise
    finally:
        for copy in made:
            shutil.rmtree(copy, ignore_errors=True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        finished = sum(1 for verdict, _, _ in results.values() if verdict != "STOPPED")
        print(f"\nstopped by {signal.Signals(received[0]).name}: {finished} of {len(chosen)} mutants finished, "
              "the scratch copies are removed", flush=True)
        return 128 + received[0]

    killed = sum(1 for verdict, _, _ in results.values() if verdict == "killed")
    wall = time.monotonic() - began
    work_s = sum(seconds for _, seconds, _ in results.values())
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    print(f"\n{stamp}: {killed} of {len(results)} mutants killed in {wall / 60:.1f} min "
          f"({jobs} at a time; {work_s / 60:.1f} min of test runs)")
    for mutant in chosen:
        verdict, _, detail = results[mutant.name]
        if verdict != "killed":
            print(f"  {verdict}: {mutant.name} ({detail})")
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
