"""Mutants for the sandbox as root and under races (issue 18)."""

from tools.mutations import Mutant

ISOLATION = "lambdas/logic/sandboxes/isolation.py"
ROOT_TESTS = ["tests/test_isolation_root.py"]

MUTANTS: list[Mutant] = [
    Mutant("isolation-root-stays-root-inside", ISOLATION, ROOT_TESTS,
           find='"--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID),', replace="", count=1, promise="Security model: no capabilities, not root"),
    Mutant("isolation-capabilities-kept", ISOLATION, ROOT_TESTS,
           find='"--cap-drop", "ALL", ', replace="", count=1, promise="Security model: no capabilities, not root"),
    Mutant("isolation-nested-userns-allowed", ISOLATION, ROOT_TESTS,
           find='"--disable-userns", ', replace="", count=1, promise="Security model: No capabilities, not root — no nested user namespace"),
    Mutant("doctor-skips-the-capability-check", "pixie/doctor.py", ROOT_TESTS,
           find="grep -Eq '^CapEff:[[:space:]]*0+$' /proc/self/status", replace="true", count=1,
           promise="CLI: pixie doctor — proves the isolation it reports"),
]

BENEATH = "lambdas/logic/sandboxes/beneath.py"
RACES = ["tests/test_races.py"]
MUTANTS += [
    Mutant("beneath-openat2-follows-links", BENEATH, RACES,
           find="RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)", replace="0)", count=1,
           promise="Security model: Files — the file tools never through a symlink"),
    Mutant("beneath-walk-follows-links", BENEATH, RACES,
           find="_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC",
           replace="_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC", count=1,
           promise="Security model: Files — the file tools never through a symlink"),
    Mutant("preview-opens-by-path", "lambdas/logic/sandboxes/local.py", RACES,
           find='fd = open_beneath(root_fd, "/".join(parts), os.O_RDONLY | os.O_NONBLOCK) if parts else os.dup(root_fd)',
           replace='fd = os.open(os.path.join(os.path.realpath(self.directory), *parts), os.O_RDONLY | os.O_NONBLOCK) if parts else os.dup(root_fd)',
           count=1, promise="Security model: Preview — never through a symlink"),
]

LOCKS = ["tests/test_run_locks.py"]
MUTANTS += [
    Mutant("run-lock-not-taken", "pixie/run_locks.py", LOCKS,
           find='    hold(stack, pixie_home, "run", run_id, run_id, f"run {run_id}")\n    own =',
           replace="    own =", count=1, promise="Security model: One run per project folder, one process per run — one resumer per run"),
    Mutant("local-continuation-takes-the-parents-folder", "lambdas/logic/continuation.py", LOCKS,
           find='    if sandbox_kind == "local":\n        return None\n', replace="", count=1,
           promise="Security model: One run per project folder, one process per run"),
    Mutant("lock-is-not-exclusive", "pixie/run_locks.py", LOCKS,
           find="fcntl.LOCK_EX | fcntl.LOCK_NB", replace="fcntl.LOCK_SH | fcntl.LOCK_NB", count=1,
           promise="Security model: One run per project folder, one process per run"),
]

SECRETS_TESTS = ["tests/test_no_isolation_secrets.py"]
MUTANTS += [
    Mutant("no-isolation-pixie-dumpable", "lambdas/logic/sandboxes/local.py", SECRETS_TESTS,
           find=".prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0", replace=".getpid() > 0", count=1,
           promise="Security model: Environment — with --no-isolation an allow-list, no secrets"),
    Mutant("no-isolation-deny-list", "lambdas/logic/sandboxes/local.py", SECRETS_TESTS,
           find="return {k: v for k, v in environ.items() if k in _PASSED_ENV or k.startswith(_PASSED_ENV_PREFIXES)}",
           replace='return {k: v for k, v in environ.items() if "KEY" not in k}', count=1,
           promise="Security model: Environment — with --no-isolation an allow-list, no secrets"),
]

BOUNDS = ["tests/test_bounds_memory_disk.py"]
MUTANTS += [
    Mutant("memory-cgroup-not-made", "lambdas/logic/sandboxes/isolation.py", BOUNDS,
           find="        memory_base = memory_cgroup_base()\n", replace="        memory_base = None\n", count=1,
           promise="Security model: Memory and disk, per run — memory"),
    Mutant("disk-not-watched-while-running", "lambdas/logic/sandboxes/local.py", BOUNDS,
           find="elif watch is not None and watch():", replace="elif False:", count=1,
           promise="Security model: Memory and disk, per run — disk"),
    Mutant("disk-bound-ten-times-looser", "lambdas/logic/sandboxes/local.py", BOUNDS,
           find="        if used > self.limit:", replace="        if used > 10 * self.limit:", count=1,
           promise="Security model: Memory and disk, per run — disk"),
]

MUTANTS += [
    Mutant("isolation-host-sysctls-writable", "lambdas/logic/sandboxes/isolation.py", ROOT_TESTS,
           find='READ_ONLY_PROC = ("/proc/sys", ', replace='READ_ONLY_PROC = (', count=1,
           promise="Security model: no capabilities, not root"),
]
