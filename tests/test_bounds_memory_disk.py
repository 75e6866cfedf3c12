"""A command's memory (all its processes together, memfd included) and the project's disk use are
bounded: past either the command is stopped and its result says so; the host is unaffected.

The memory bound needs a memory cgroup pixie may create (root, or a delegated v2 subtree); where
there is none the test skips, and PIXIE_CI_NO_SKIP (CI runs as root) makes that a failure for root."""

from __future__ import annotations

import os
from pathlib import Path

from lambdas.logic.sandboxes.isolation import IsolationPolicy, Limits, memory_cgroup_base
from lambdas.logic.sandboxes.local import LocalSandbox, project_disk_bytes
from conftest import require_isolation, skip_by_design, skip_or_fail_in_ci

MB = 1024 * 1024
# One process maps a 1 GB memfd and touches every page: shared memory, which RLIMIT_DATA does not count.
MEMFD_HOG = (
    "python3 -c \"import os, mmap; fd = os.memfd_create('hog'); size = 1 << 30; os.ftruncate(fd, size); "
    "m = mmap.mmap(fd, size); [m.__setitem__(i, 1) for i in range(0, size, 4096)]; print('survived')\""
)


def sandbox(tmp_path: Path, **limits) -> LocalSandbox:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    return LocalSandbox("local-" + "m" * 12, project, IsolationPolicy(limits=Limits(**limits)))


def test_memory_of_all_a_commands_processes_is_bounded_memfd_included(tmp_path):
    require_isolation()
    if memory_cgroup_base() is None:
        if os.geteuid() != 0:
            # An ordinary user gets no memory cgroup (tools/test_as_user.sh): the per-process rlimits bind.
            skip_by_design("an ordinary user gets no memory cgroup (root, or a delegated cgroup v2 subtree, is needed)")
        skip_or_fail_in_ci("pixie, as root, cannot create a memory cgroup here")
    result = sandbox(tmp_path, total_memory_mb=256).run_command(MEMFD_HOG, 60)
    assert "survived" not in result.stdout
    assert result.exit_code != 0 and not result.timed_out
    assert "went past the memory bound (256 MB" in result.stderr
    # The same command with room to spare runs: the bound, not something else, stopped it.
    roomy = sandbox(tmp_path, total_memory_mb=2048).run_command(MEMFD_HOG, 120)
    assert "survived" in roomy.stdout, roomy.stderr


def test_a_command_that_keeps_writing_past_the_disk_bound_is_stopped_and_told(tmp_path):
    require_isolation()
    box = sandbox(tmp_path, project_bytes=20 * MB)
    result = box.run_command("while :; do head -c 1048576 /dev/zero >> grow.bin; done", 60)
    assert not result.timed_out, "the writer ran until its timeout: the disk bound never stopped it"
    assert "past its bound of 20,971,520 (PIXIE_MAX_PROJECT_BYTES)" in result.stderr
    # Stopped within a check or two of the bound, far from the 1 GB per-file limit.
    assert project_disk_bytes(box.project_root) < 700 * MB
    # The model can clean up: a command that removes the file runs, and later ones are not stopped.
    assert box.run_command("rm grow.bin && echo cleaned", 30).stdout.strip() == "cleaned"
    assert "past its bound" not in box.run_command("echo fine", 30).stderr


def test_a_quick_command_that_lands_past_the_disk_bound_is_told_too(tmp_path):
    require_isolation()
    result = sandbox(tmp_path, project_bytes=20 * MB).run_command("fallocate -l 64M big.bin && echo made", 60)
    assert "made" in result.stdout
    assert "past its bound" in result.stderr


def test_disk_use_counts_allocated_blocks_without_following_links(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"x" * 100_000)
    with open(tmp_path / "sparse", "wb") as handle:
        handle.truncate(1 << 30)  # a 1 GB sparse file uses (almost) nothing
    (tmp_path / "link").symlink_to("/usr")
    used = project_disk_bytes(str(tmp_path))
    assert 100_000 <= used < 2 * MB
