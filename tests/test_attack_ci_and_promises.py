"""Attacks on issue 25's checks (the README-to-mutant check, CI never green with a machine-dependent
skip). Each test fails while its weakness is there and passes once it is fixed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import skip_or_fail_in_ci
from tests.promises import README
from tests.readme_promises import promise_named, readme_promises
from tests.test_ci_requires import CHEAP_TEST, _outcome_under_ci
from tests.test_readme_mutants import uncovered
from tools.mutations import MUTANTS

ROOT = Path(__file__).resolve().parents[1]
NEW = "Security model: Teleportation"


def _with_lines(before_heading: str, new_lines: list[str]) -> str:
    """The README with `new_lines` put just before the heading line `before_heading` (so at the
    end of the section above it)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    at = lines.index(before_heading)
    lines[at:at] = [*new_lines, ""]
    return "\n".join(lines)


def _reported(text: str) -> set[str]:
    return {str(p) for p in uncovered(readme_promises(text))}


# --- the README parser -----------------------------------------------------------------------------
# A code block at the end of the Security model section (an `--allow-host` example, say), then a
# new promise after it. readme_section ends a section at any line starting `# ` (a shell comment
# inside the fence included), and _blocks toggles fenced code on any ``` or ~~~ line (a ``` line
# inside a ~~~ fence closes it): the new promise is never seen, so it needs no mutant.
CODE_BLOCKS = {
    "bash block with a comment line": ["```bash", "# reach npm only", "pixie run --allow-host @npm 'x'", "```"],
    # How to open a code block in a Markdown file, shown in a ~~~ fence: its ``` line does not
    # close the ~~~ fence (CommonMark: same character, at least as long), but toggles _blocks'.
    "tilde fence showing how to open a backtick fence": ["~~~markdown", "```bash", "~~~"],
}


@pytest.mark.parametrize("block", CODE_BLOCKS, ids=list(CODE_BLOCKS))
def test_a_promise_after_a_code_block_still_needs_a_mutant(block):
    text = _with_lines("### Durability", ["", *CODE_BLOCKS[block], "",
                                          "- **Teleportation:** commands never leave the solar system."])
    assert NEW in _reported(text), f"a promise after a {block} slips through"


# A promise in a blockquote: a GitHub alert (`> [!IMPORTANT]`) is the usual way to stress a
# security promise, and a quoted list is plain Markdown.
BLOCKQUOTES = {
    "quoted bullet": ["> - **Teleportation:** commands never leave the solar system."],
    "quoted bold paragraph": ["> **Teleportation:** commands never leave the solar system."],
    "GitHub alert": ["> [!IMPORTANT]", "> **Teleportation:** commands never leave the solar system."],
}


@pytest.mark.parametrize("form", BLOCKQUOTES, ids=list(BLOCKQUOTES))
def test_a_promise_in_a_blockquote_needs_a_mutant(form):
    text = _with_lines("### Durability", ["", *BLOCKQUOTES[form]])
    assert NEW in _reported(text), f"a {form} promise slips through"


def test_a_table_row_whose_first_cell_is_empty_is_a_promise_of_its_own():
    """Every row is a promise of its own (readme_promises' docstring); a row with an empty first
    cell (a second line of the row above, a grouped table) gets the label "" and is dropped."""
    lines = README.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("| `InvalidEvent` |"))
    lines.insert(at + 1, "| | `Teleported` (a command left the solar system): fails at once |")
    before, after = readme_promises(), readme_promises("\n".join(lines))
    assert len(after) > len(before), "the row with an empty first cell is no promise"


def test_a_table_row_with_a_bold_first_cell_is_labelled_by_its_words():
    """`| **Teleportation** | ... |` is labelled `**Teleportation**` (the asterisks kept), so the
    mutant a README editor would write, promise="Security model: Teleportation", names nothing."""
    text = _with_lines("### Durability", ["", "| promise | what |", "| --- | --- |",
                                          "| **Teleportation** | commands never leave the solar system |"])
    assert NEW in {str(p) for p in readme_promises(text)}


def test_a_second_bullet_with_the_same_bold_label_is_a_promise_of_its_own():
    """Rows sharing a label are told apart (the two `POST /api/runs` rows); bullets are not: a
    second `**Files:**` bullet merges into the first, and the first's mutants cover it."""
    text = _with_lines("### Durability", ["", "- **Files:** downloads never leave the solar system either."])
    assert len(readme_promises(text)) > len(readme_promises()), "the second **Files:** bullet is no promise of its own"


# --- mutants naming promises -----------------------------------------------------------------------
@pytest.mark.parametrize("row_start, said_in", [
    ('| `POST /api/runs` `{"rerunOf"', '"rerunOf"'),
    ("| `pixie send --continue", "pixie send --continue"),
    ("| `pixie run --continue", "pixie run --continue"),
])
def test_a_mutant_whose_row_is_gone_names_nothing_rather_than_a_shorter_promise(row_start, said_in):
    """With its row removed from the README (the feature dropped or renamed there), a mutant for
    `pixie run --continue` falls back to naming `pixie run`, and the rerunOf one names the start
    row (`POST /api/runs`, no longer told apart): the check that a mutant names a real promise
    stays green, and the other row counts as covered by a mutant that breaks something else."""
    lines = [line for line in README.read_text(encoding="utf-8").splitlines() if not line.startswith(row_start)]
    promises = readme_promises("\n".join(lines))
    mutants = [m for m in MUTANTS if said_in in m.promise]
    assert mutants, f"no mutant names {said_in}"
    named = {m.name: str(promise_named(m.promise, promises)) for m in mutants}
    assert all(p == "None" for p in named.values()), f"with {said_in}'s row gone its mutants still name: {named}"


# --- CI never green with a machine-dependent skip --------------------------------------------------
XFAIL_PLUGIN = (
    "import pytest\n"
    "@pytest.fixture(autouse=True)\n"
    "def _no_teleporter():\n"
    "    pytest." "xfail('this machine lacks a teleporter')\n"
)


def test_an_xfail_for_want_of_something_fails_under_ci(tmp_path):
    """The conftest hook lets every xfail through under PIXIE_CI_NO_SKIP=1, and the static check
    (test_every_skip_in_the_tests_goes_through_the_helpers) looks for skips only: a test that
    calls pytest.xfail (or carries mark.xfail(condition=...)) when npm or Chromium is missing
    leaves CI green with it unrun."""
    summary = _outcome_under_ci(CHEAP_TEST, tmp_path, plugin=XFAIL_PLUGIN)
    assert "xfailed" not in summary and re.fullmatch(r"1 (failed|error) in .*", summary), summary


def test_ensure_address_leaves_no_machine_without_an_address_the_egress_tests_find():
    """.ci/ensure-address exits early whenever a route to 192.0.2.1 exists, but own_address()
    also refuses a loopback or link-local source: a container whose only address is link-local
    (169.254/16) keeps none, and every egress test fails in CI although the step said nothing."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        skip_or_fail_in_ci("checking .ci/ensure-address needs root, unshare and ip (iproute2)")
    probe = "from lambdas.logic.sandboxes.egress import own_address; print(own_address())"
    script = ("ip link set lo up && ip addr add 169.254.7.7/16 dev lo"
              " && ip route add default dev lo src 169.254.7.7"
              f" && .ci/ensure-address && {sys.executable} -c '{probe}'")
    done = subprocess.run(["unshare", "--net", "bash", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] != "None", "ensure-address left no address own_address() finds"


@pytest.mark.parametrize("said", [
    "Bounds on what a model sends: Files — a file over the limit",  # the heading in full
    "Security: Files — the project folder the only writable place",  # the heading's leading word
])
def test_a_mutant_naming_a_checked_section_by_another_spelling_names_its_promise_or_nothing(said):
    """heading_named accepts a checked section under another spelling (the whole heading, its
    leading words), but test_every_mutant_naming_a_checked_section_names_one_of_its_promises only
    looks at mutants whose section is spelt as a SECTIONS key: such a mutant passes both checks
    while naming no promise (promise_named compares the section spelling exactly)."""
    from tests.readme_promises import SECTIONS, heading_named, readme_headings

    section = said.partition(":")[0]
    heading = heading_named(section, readme_headings())
    if heading in SECTIONS.values():
        assert promise_named(said, readme_promises()) is not None, f"{said!r}: accepted as {heading!r}, names nothing"
