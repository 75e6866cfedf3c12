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
           find='"--disable-userns", ', replace="", count=1, promise="Security model: no nested user namespace"),
    Mutant("doctor-skips-the-capability-check", "pixie/doctor.py", ROOT_TESTS,
           find="grep -Eq '^CapEff:[[:space:]]*0+$' /proc/self/status", replace="true", count=1,
           promise="Security model: pixie doctor proves it"),
]
