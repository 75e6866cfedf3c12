"""`make mutants`: break pixie on purpose, one named mutation at a time, and check that the tests
notice. Each mutant (tools/mutations.py) edits one file in a scratch copy of the repository — a
find/replace in Python code, or an edit of the parsed JSON of agent.asl.json — then runs the test
files mapped to it. A mutant is *killed* when those tests fail, *survived* when they pass. The
exit code is non-zero when any mutant survived, or could not be applied (its code moved: update
the entry).

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
import concurrent.futures
import fnmatch
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.mutations import MUTANTS, Mutant  # noqa: E402

TIMEOUT_S = 900  # a mutant whose tests hang this long counts as killed (a hang is noticed)


def scratch_copy() -> Path:
    """The tracked and untracked-but-not-ignored files of the repository, in a temporary folder."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    target = Path(tempfile.mkdtemp(prefix="pixie-mutants-"))
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


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
    return text.replace(mutant.find, mutant.replace)


def run_tests(copy: Path, tests: list[str]) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *tests]
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return -1, "timeout"
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED tests/", "ERROR tests/"))]
    return done.returncode, (failed[0] if failed else done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:])


def run_one(mutant: Mutant, copy: Path, tests: list[str]) -> tuple[str, float, str]:
    """Applies `mutant` to `copy`, runs its tests, puts the file back: (verdict, seconds, detail)."""
    path = copy / mutant.file
    original = path.read_text(encoding="utf-8")
    start = time.monotonic()
    try:
        path.write_text(mutate(mutant, original), encoding="utf-8")
    except (ValueError, KeyError, IndexError, StopIteration) as exc:
        return "NOT APPLIED", 0.0, str(exc)
    try:
        code, detail = run_tests(copy, tests)
    finally:
        path.write_text(original, encoding="utf-8")
    # pytest: 1 = tests failed; 0 = all passed; anything else (no tests, usage) is an error.
    return {0: "SURVIVED", 1: "killed", -1: "killed"}.get(code, "ERROR"), time.monotonic() - start, detail


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
    if not chosen:
        parser.error(f"no mutant matches {args.names}")

    jobs = max(1, min(args.jobs, len(chosen)))
    print(f"{len(chosen)} mutants, {jobs} at a time", flush=True)
    # One scratch copy per worker: a worker takes a free copy, mutates one file, runs the tests and
    # puts the file back before handing the copy on, so mutants never see each other's edits.
    copies: queue.Queue[Path] = queue.Queue()
    made = [scratch_copy() for _ in range(jobs)]
    for copy in made:
        copies.put(copy)
    results: dict[str, tuple[str, float, str]] = {}
    began = time.monotonic()
    width = len(str(len(chosen)))

    def work(mutant: Mutant) -> tuple[str, float, str]:
        copy = copies.get()
        try:
            return run_one(mutant, copy, args.tests or mutant.tests)
        finally:
            copies.put(copy)

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            pending = {pool.submit(work, m): m for m in chosen}
            for done in concurrent.futures.as_completed(pending):
                mutant = pending[done]
                verdict, seconds, detail = results[mutant.name] = done.result()
                print(f"[{len(results):{width}}/{len(chosen)}] {mutant.name:40} {verdict:8} {seconds:6.1f}s  {detail}", flush=True)
    finally:
        for copy in made:
            shutil.rmtree(copy, ignore_errors=True)

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
