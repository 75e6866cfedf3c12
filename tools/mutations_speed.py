"""Mutants for start-up and the bench (issue 24)."""

from tools.mutations import Mutant

STARTUP = "tests/test_startup.py"
BENCH = "tests/test_bench.py"

MUTANTS: list[Mutant] = [
    Mutant("engine-loads-moto-ec2", "statemachine/engine.py", [STARTUP],
           find="\ndefer_moto_batch()  #", replace="\npass  #", count=1,
           promise="Performance: no moto.ec2 at start-up"),
    Mutant("bench-asks-past-the-cap", "bench/workload.py", [f"{BENCH}::test_every_workload_the_full_bench_uses_is_within_pixies_limits"],
           find="max_iterations=min(self.iterations + 5, MAX_ITERATIONS_CAP)", replace="max_iterations=self.iterations + 5",
           count=1, promise="Performance: make bench runs"),
]
