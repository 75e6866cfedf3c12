"""`make mutants` covers every promise of the README: each bullet, bold paragraph and table row of
the Security model, Durability, Bounds, Console and CLI sections (tests/readme_promises.py says
what counts) must be named by at least one mutant in tools/mutations*.py (`promise="Section:
label ..."`). A promise added to the README without a mutant fails here, in `make test`."""

from __future__ import annotations

import re

from tests.promises import README, ROOT
from tests.readme_promises import SECTIONS, Promise, promise_named, readme_headings, readme_promises
from tools.mutants import mutate
from tools.mutations import MUTANTS


def uncovered(promises: list[Promise]) -> list[Promise]:
    named = {promise_named(m.promise, promises) for m in MUTANTS if m.promise}
    return [p for p in promises if p not in named]


def test_each_section_yields_its_promises():
    """A guard on the parser: a section whose bullets or rows stop being recognised (a reformat)
    would otherwise leave nothing to check."""
    promises = readme_promises()
    for section in SECTIONS:
        labels = [p.label for p in promises if p.section == section]
        assert len(labels) >= 5, f"only {labels} found in the README's {section} section"
    labels = {str(p) for p in promises}
    for expected in ("Security model: No capabilities, not root", "Durability: Lambda.Unknown",
                     "Bounds: Calls per turn", "CLI: pixie run", "CLI: pixie run --continue",
                     "CLI: Stopping a run", "Console: Security", "Console: POST /api/runs"):
        assert expected in labels


def test_every_readme_promise_has_a_mutant():
    missing = uncovered(readme_promises())
    assert not missing, (
        "README promises no mutant names (add one to tools/mutations_<area>.py with "
        'promise="Section: label — what it breaks"):\n' + "\n".join(f"  {p}" for p in missing)
    )


def test_a_promise_added_without_a_mutant_is_reported():
    lines = README.read_text(encoding="utf-8").splitlines()
    # A bullet right under the Security model heading, and a row at the top of the CLI table.
    at = lines.index("### Security model") + 1
    lines[at:at] = ["", "- **Teleportation:** commands never leave the solar system.", ""]
    cli = lines.index("## CLI")
    separator = next(i for i in range(cli, len(lines)) if re.match(r"^\|\s*-", lines[i]))
    lines.insert(separator + 1, "| `pixie fly [--to PLACE]` | flies |")
    added = "\n".join(lines)
    assert {str(p) for p in uncovered(readme_promises(added))} == {"Security model: Teleportation", "CLI: pixie fly"}


def test_every_mutant_names_a_readme_section_and_existing_tests():
    headings = readme_headings()
    for mutant in MUTANTS:
        section, colon, label = mutant.promise.partition(":")
        assert colon and label.strip(), f"{mutant.name}: promise={mutant.promise!r} is not 'Section: label'"
        assert any(h.startswith(section) for h in headings), f"{mutant.name}: no README section {section!r}"
        for test in mutant.tests:
            assert (ROOT / test.split("::")[0]).is_file(), f"{mutant.name}: no test file {test}"
    names = [m.name for m in MUTANTS]
    assert len(names) == len(set(names)), "two mutants share a name"
    assert all(re.fullmatch(r"[a-z0-9-]+", n) for n in names)


def test_every_mutant_still_applies():
    """A mutant whose code moved (its `find` no longer occurs exactly `count` times) is NOT APPLIED
    in `make mutants`, which fails CI 40 minutes in: say so here, in seconds."""
    moved = []
    for mutant in MUTANTS:
        try:
            mutate(mutant, (ROOT / mutant.file).read_text(encoding="utf-8"))
        except (ValueError, KeyError, IndexError, StopIteration) as exc:
            moved.append(f"{mutant.name}: {exc}")
    assert not moved, "mutants whose code moved (update their find):\n" + "\n".join(moved)
