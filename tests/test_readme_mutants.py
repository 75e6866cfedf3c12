"""`make mutants` covers every promise of the README: each bullet, bold paragraph and table row of
the Security model, Durability, Bounds, Console and CLI sections (tests/readme_promises.py says
what counts) must be named by at least one mutant in tools/mutations*.py (`promise="Section:
label ..."`). A promise added to the README without a mutant fails here, in `make test`; so does
a mutant whose promise names no README heading, or no promise of a checked section."""

from __future__ import annotations

import re

from tests.promises import README, ROOT
import pytest

from tests.readme_promises import SECTIONS, Promise, checked_section, heading_named, promise_named, readme_headings, readme_promises
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
                     "CLI: Stopping a run", "Console: Security", 'Console: POST /api/runs {"prompt"',
                     'Console: POST /api/runs {"rerunOf"'):
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
        assert heading_named(section, headings), f"{mutant.name}: no README heading {section!r}"
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


def test_a_section_is_a_whole_heading_or_its_leading_words():
    headings = readme_headings()
    assert heading_named("Deploy", headings) == "Deploy to AWS"
    assert heading_named("Bounds", headings) == "Bounds on what a model sends"
    for typo in ("Durabilty", "Dur", "Deplo", "Securty model", "or, with Amazon Bedrock instead of OpenAI (no OpenAI secret; enable model access first)"):
        assert heading_named(typo, headings) is None, typo  # the last: a comment in a code block


# Found by the attack session on issue 25: each test failed while its weakness was there.
# Standard Markdown ways to write a promise (a list item with a bold label, a table row) that a
# README editor may well use; each must be reported when no mutant names it.
FORMS = {
    "numbered list": ["1. **Teleportation:** commands never leave the solar system."],
    "star bullet": ["* **Teleportation:** commands never leave the solar system."],
    "plus bullet": ["+ **Teleportation:** commands never leave the solar system."],
    "bullet with wider spacing": ["-   **Teleportation:** commands never leave the solar system."],
    "nested bullet": ["- **No capabilities, not root:** as before.",
                      "  - **Teleportation:** commands never leave the solar system."],
    "table without outer pipes": ["Promise | What", "--- | ---", "`Teleportation` | never leaves"],
    "indented table": ["  | Promise | What |", "  |---|---|", "  | `Teleportation` | never leaves |"],
}


@pytest.mark.parametrize("form", FORMS, ids=list(FORMS))
def test_a_promise_in_any_markdown_list_or_table_form_without_a_mutant_is_reported(form):
    lines = README.read_text(encoding="utf-8").splitlines()
    at = lines.index("### Security model") + 1
    lines[at:at] = ["", *FORMS[form], ""]
    missing = {str(p) for p in uncovered(readme_promises("\n".join(lines)))}
    assert "Security model: Teleportation" in missing, f"a {form} promise slips through: {sorted(missing)}"


def test_every_mutant_naming_a_checked_section_names_one_of_its_promises():
    """A mutant whose promise= is in a checked section but matches no parsed promise (a typo, a
    renamed label, a promise the parser does not see) covers nothing, silently."""
    promises = readme_promises()
    naming_nothing = [
        f"{m.name}: {m.promise!r}" for m in MUTANTS
        if checked_section(m.promise.partition(":")[0]) in SECTIONS and promise_named(m.promise, promises) is None
    ]
    assert not naming_nothing, "mutants naming no README promise:\n" + "\n".join(naming_nothing)


def test_a_new_table_row_sharing_its_first_code_span_with_another_row_needs_its_own_mutant():
    """The Console table has two `POST /api/runs` rows (a start and a rerunOf): a third (a new
    body, a new promise) must not be covered by a mutant that names one of the other two."""
    lines = README.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith('| `POST /api/runs` `{"rerunOf"'))
    lines.insert(at + 1, '| `POST /api/runs` `{"teleportTo": PLACE}` | starts the run on another planet |')
    before = readme_promises()
    after = readme_promises("\n".join(lines))
    assert len(after) > len(before), "the new POST /api/runs row is not a promise of its own"
    assert {str(p) for p in uncovered(after)} == {'Console: POST /api/runs {"teleportTo"'}


@pytest.mark.parametrize("said", [
    "Console: GET /api/runs/ID/diff — what the run changed",       # RUN_ID spelt ID
    "Console: POST /api/runs/{id}/stop — two stops at once",        # RUN_ID spelt {id}
])
def test_a_mutant_naming_another_endpoint_does_not_cover_the_endpoint_its_path_starts_with(said):
    """`/` does not end a label, so a mutant for a sub-resource whose placeholder is spelt
    differently does not cover the collection endpoint (`GET /api/runs`, `POST /api/runs`)."""
    named = promise_named(said, readme_promises())
    assert named is None or not named.label.startswith(("GET /api/runs", "POST /api/runs")), f"{said!r} covers {named}"


def test_a_label_ends_at_a_space_or_punctuation_that_ends_a_phrase():
    promises = readme_promises()
    assert str(promise_named("CLI: pixie run --continue — its files", promises)) == "CLI: pixie run --continue"
    assert str(promise_named("Durability: Lambda.Unknown, retried once", promises)) == "Durability: Lambda.Unknown"
    assert promise_named("Durability: Lambda.UnknownError — another name", promises) is None
    assert promise_named("Durability: Lambda.Unknown.x — a dotted name", promises) is None
    assert promise_named("CLI: pixie run-twice — a command of its own", promises) is None
