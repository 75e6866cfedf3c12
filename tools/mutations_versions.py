"""Mutants for versions (issue 20): one per README promise about kept versions."""

from tools.mutations import Mutant

V = "tests/test_versions.py"
STORE = [f"{V}::test_unchanged_files_are_stored_once_and_old_versions_are_pruned"]
CLI_FLOW = [f"{V}::test_open_diff_and_restore_follow_each_runs_own_version"]
OPEN = ["tests/test_cli_runs.py::test_list_show_by_prefix_and_open_serve_finished_runs"]
FORK = ["tests/test_continue_resume.py::test_continue_forks_a_folder_of_its_own_from_the_parents_version_files_and_conversation"]

MUTANTS: list[Mutant] = [
    Mutant("versions-blob-per-run", "lambdas/logic/versions.py", STORE,
           find="                sha = hashlib.sha256(data).hexdigest()",
           replace="                sha = hashlib.sha256(data + run_id.encode()).hexdigest()", count=1,
           promise="Projects across runs: versions store an unchanged file once"),
    Mutant("versions-no-count-pruning", "lambdas/logic/versions.py", STORE,
           find="        while len(manifests) > self.limits.max_versions or", replace="        while False or", count=1,
           promise="Projects across runs: versions pruned past a count or size"),
    Mutant("versions-binary-diffed-as-text", "lambdas/logic/versions.py",
           [f"{V}::test_binary_and_large_files_are_stored_and_listed_not_diffed"],
           find="        if binary or large:", replace="        if large:", count=1,
           promise="Projects across runs: binary files listed, not diffed"),
    Mutant("versions-hard-link-read", "lambdas/logic/versions.py",
           [f"{V}::test_links_and_special_files_are_listed_never_read"],
           find="    if opened.st_nlink > 1:", replace="    if False:", count=1,
           promise="Projects across runs: versions never read through links"),
    Mutant("versions-no-partial-version", "pixie/run_journal.py",
           [f"{V}::test_a_run_has_its_partial_version_while_it_goes"],
           find='VERSION_STEPS = frozenset({"pixie-create-sandbox", "pixie-run-tool"})', replace="VERSION_STEPS = frozenset()",
           count=1, promise="Projects across runs: an interrupted run keeps its partial version"),
    Mutant("versions-no-tool-call-changes", "lambdas/logic/steps/run_tool.py",
           [f"{V}::test_each_tool_call_lists_the_files_it_touched"],
           find="        if changes.found:", replace="        if False:", count=1,
           promise="Projects across runs: per tool call, the files it created, changed, deleted"),
    Mutant("versions-open-serves-folder", "pixie/cli.py", OPEN,
           find='        served = check_out_version(pixie_home(), record["runId"])',
           replace='        raise VersionNotFound("mutant")', count=1,
           promise="CLI: pixie open — serves exactly that run's version"),
    Mutant("versions-restore-overwrites", "pixie/versions.py", CLI_FLOW,
           find="    new_id = new_run_id()", replace="    new_id = run_id", count=1,
           promise="CLI: pixie restore — makes a new version, never destructive"),
    Mutant("versions-continue-takes-parent-folder", "lambdas/logic/continuation.py", FORK,
           find='    if sandbox_kind == "local":\n        return None\n', replace="", count=1,
           promise="Projects across runs: each local continuation gets a folder of its own"),
    Mutant("versions-continue-from-table-only", "lambdas/logic/continuation.py", FORK,
           find="        if not restore_version(sandbox, parent.run_id, settings):", replace="        if True:", count=1,
           promise="Projects across runs: a continuation starts from the parent's version"),
]

MUTANTS += [
    Mutant("versions-console-opens-live-folder", "pixie/console/backends.py",
           ["tests/test_console_browser.py::test_a_run_page_shows_its_diff_and_opens_an_older_version"],
           find="        return LocalSandbox(f\"version-{run_id}-{folder.name[-8:]}\", folder).get_url()",
           replace="        return None",
           count=1, promise="Console: POST /api/runs/RUN_ID/open-version — exactly that run's version"),
]
MUTANTS += [
    Mutant("versions-timeline-without-files", "pixie/console/static/run.js",
           ["tests/test_console_browser.py::test_a_run_page_shows_its_diff_and_opens_an_older_version"],
           find="        touchedFiles(step),", replace="", count=1,
           promise="Console: Run — the timeline shows per tool call the files it touched"),
]
MUTANTS += [
    Mutant("diff-header-prints-the-raw-name", "lambdas/logic/versions.py",
           ["tests/test_versions.py::test_a_file_name_with_a_newline_cannot_forge_lines_of_pixie_diff"],
           find='                tofile=f"b/{header_path(path)}" if after else "/dev/null",',
           replace='                tofile=f"b/{path}" if after else "/dev/null",', count=1,
           promise="CLI: pixie diff — a file name on one line"),
]
MUTANTS += [
    Mutant("abandoned-partial-versions-never-pruned", "lambdas/logic/versions.py",
           ["tests/test_versions.py::test_versions_of_interrupted_runs_never_resumed_stay_within_the_projects_bound"],
           find='(m for m in kept if m["runId"] != keep and m.get("createdAt", 0) < abandoned)',
           replace="(m for m in kept if False)", count=1, promise="Projects across runs: Versions — Bounds: partial versions not rewritten for an hour are pruned"),
    Mutant("hard-linked-pair-dropped", "lambdas/logic/versions.py",
           ["tests/test_versions.py::test_a_hard_linked_pair_inside_the_project_is_kept_in_its_version"],
           find="        if len(paths) == names and", replace="        if False and", count=1,
           promise="Projects across runs: every file of the project is kept in its version"),
    Mutant("restore-of-a-running-run", "pixie/versions.py", ["tests/test_versions.py::test_a_running_run_is_not_restored"],
           find='    if source.get("status") == "RUNNING":', replace="    if False:", count=1,
           promise="CLI: pixie restore — a running run is not restored"),
]
