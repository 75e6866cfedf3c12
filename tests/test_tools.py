"""The three tools through execute_tool, as RunTool calls them: a real local sandbox and the
moto-backed network state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lambdas.logic.tools import ToolContext, execute_tool, tool_definitions
from lambdas.logic.limits import DEFAULT_MAX_FILE_BYTES as MAX_FILE_BYTES

RUN_ID = "run-tools"
LIMIT = 10_000


@pytest.fixture
def ctx(local_sandbox, table) -> ToolContext:
    return ToolContext(run_id=RUN_ID, sandbox=local_sandbox, state=table, command_timeout_s=5)


def call(ctx: ToolContext, name: str, arguments, limit: int = LIMIT) -> tuple[str, bool]:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return execute_tool(name, raw, ctx, limit)


def project(ctx: ToolContext) -> Path:
    return Path(ctx.sandbox.project_root)


# --- terminal --------------------------------------------------------------------------------
def test_terminal_success_reports_exit_code_and_output(ctx):
    content, ok = call(ctx, "terminal", {"command": "echo hello; echo warn >&2"})
    assert ok is True
    assert content == "exit code 0\n--- stdout ---\nhello\n\n--- stderr ---\nwarn\n"


def test_terminal_failure_reports_the_exit_code_and_stderr(ctx):
    content, _ = call(ctx, "terminal", {"command": "ls does-not-exist"})
    first_line = content.splitlines()[0]
    assert first_line.startswith("exit code ") and first_line != "exit code 0"
    assert "does-not-exist" in content.split("--- stderr ---", 1)[1]


def test_terminal_exit_code_is_the_commands(ctx):
    content, ok = call(ctx, "terminal", {"command": "exit 42"})
    assert content.startswith("exit code 42\n")
    assert ok is True  # a non-zero exit is a normal result the model reads, not an error (README)


def test_terminal_timeout_says_the_command_was_killed(ctx):
    ctx = ToolContext(run_id=RUN_ID, sandbox=ctx.sandbox, state=ctx.state, command_timeout_s=1)
    content, ok = call(ctx, "terminal", {"command": "echo begun; sleep 30"})
    assert ok is True and content.startswith("killed after the 1s timeout")
    assert "exit code" not in content
    assert "begun" in content


def test_terminal_runs_in_the_project_root(ctx):
    content, ok = call(ctx, "terminal", {"command": "cat index.html | head -c 20"})
    assert ok and content.startswith("exit code 0")
    assert (project(ctx) / "index.html").read_text()[:20] in content


# --- createOrUpdateFiles ---------------------------------------------------------------------
def test_create_or_update_files_writes_the_sandbox_and_the_run_state(ctx):
    big = "<p>" + "lorem ipsum " * 500 + "</p>"
    files = [{"path": "index.html", "content": big}, {"path": "./src/app.js", "content": "alert(1)"}]
    content, ok = call(ctx, "createOrUpdateFiles", {"files": files})
    assert ok is True
    assert (project(ctx) / "index.html").read_text() == big
    assert (project(ctx) / "src" / "app.js").read_text() == "alert(1)"
    assert ctx.state.list_files(RUN_ID) == {"index.html": big, "src/app.js": "alert(1)"}
    # a short acknowledgement naming the files, not their contents
    assert "index.html" in content and "src/app.js" in content
    assert len(content) < 200 and "lorem" not in content


def test_create_or_update_files_overwrites(ctx):
    call(ctx, "createOrUpdateFiles", {"files": [{"path": "a.txt", "content": "v1"}]})
    content, ok = call(ctx, "createOrUpdateFiles", {"files": [{"path": "a.txt", "content": "v2"}]})
    assert ok
    assert ctx.sandbox.read_file("a.txt") == "v2"
    assert ctx.state.list_files(RUN_ID) == {"a.txt": "v2"}


def test_an_absolute_path_in_the_project_is_stored_relative(ctx):
    absolute = f"{ctx.sandbox.project_root}/pages/x.html"
    _, ok = call(ctx, "createOrUpdateFiles", {"files": [{"path": absolute, "content": "X"}]})
    assert ok
    assert ctx.state.list_files(RUN_ID) == {"pages/x.html": "X"}
    assert (project(ctx) / "pages" / "x.html").read_text() == "X"


def test_empty_content_is_a_valid_file(ctx):
    _, ok = call(ctx, "createOrUpdateFiles", {"files": [{"path": "empty.txt", "content": ""}]})
    assert ok and (project(ctx) / "empty.txt").read_text() == ""


# --- readFiles -------------------------------------------------------------------------------
def test_read_files_returns_each_files_content(ctx):
    ctx.sandbox.write_files({"a.txt": "alpha", "dir/b.txt": "beta"})
    content, ok = call(ctx, "readFiles", {"files": ["a.txt", "dir/b.txt"]})
    assert ok is True
    assert content == "--- a.txt ---\nalpha\n--- dir/b.txt ---\nbeta"


def test_read_files_reports_a_missing_file_among_good_ones(ctx):
    ctx.sandbox.write_files({"a.txt": "alpha", "c.txt": "gamma"})
    content, ok = call(ctx, "readFiles", {"files": ["a.txt", "missing.txt", "c.txt"]})
    assert "alpha" in content and "gamma" in content
    missing_section = content.split("--- missing.txt ---\n", 1)[1].split("\n--- c.txt ---", 1)[0]
    assert missing_section.startswith("Error: ") and "does not exist" in missing_section


def test_read_files_reports_an_escaping_path_without_reading_it(ctx, tmp_path):
    (tmp_path / "outside.txt").write_text("TOP SECRET")
    content, _ = call(ctx, "readFiles", {"files": ["../../outside.txt", "/etc/passwd", str(tmp_path / "outside.txt")]})
    assert "TOP SECRET" not in content and "root:" not in content
    assert content.count("Error: ") == 3


# --- bad calls: always one clear error result, never an exception ------------------------------
@pytest.mark.parametrize(
    "name, raw, expected",
    [
        ("terminal", '{"command": "ls"', "not valid JSON"),
        ("terminal", "not json at all", "not valid JSON"),
        ("rm_rf", '{"command": "ls"}', "unknown tool 'rm_rf'"),
        ("", "{}", "unknown tool"),
        ("terminal", "{}", "command"),
        ("terminal", "", "command"),
        ("terminal", '{"command": 5}', "command"),
        ("terminal", '{"command": ""}', "command"),
        ("terminal", '{"command": null}', "command"),
        ("terminal", '{"command": "ls", "cwd": "/"}', "cwd"),
        ("terminal", "[1, 2]", "invalid arguments for terminal"),
        ("terminal", "null", "invalid arguments for terminal"),
        ("terminal", '"ls"', "invalid arguments for terminal"),
        ("createOrUpdateFiles", '{"files": "index.html"}', "files"),
        ("createOrUpdateFiles", '{"files": []}', "files"),
        ("createOrUpdateFiles", '{"files": [{"path": "a.txt"}]}', "content"),
        ("createOrUpdateFiles", '{"files": [{"content": "x"}]}', "path"),
        ("createOrUpdateFiles", '{"files": [{"path": "a.txt", "content": 7}]}', "content"),
        ("createOrUpdateFiles", '{"files": [{"path": "a.txt", "content": "x", "mode": "755"}]}', "mode"),
        ("createOrUpdateFiles", '{"files": [{"path": "a.txt", "content": "x"}], "dryRun": true}', "dryRun"),
        ("createOrUpdateFiles", '{"files": [{"path": "../escape.txt", "content": "x"}]}', "escapes the project root"),
        ("createOrUpdateFiles", '{"files": [{"path": "/etc/evil", "content": "x"}]}', "outside the project"),
        ("createOrUpdateFiles", '{"files": [{"path": "a/../../x", "content": "x"}]}', "escapes the project root"),
        ("createOrUpdateFiles", '{"files": [{"path": "", "content": "x"}]}', "path"),
        ("createOrUpdateFiles", '{"files": [{"path": "   ", "content": "x"}]}', "path must be a non-empty string"),
        ("createOrUpdateFiles", '{"files": [{"path": "a\\u0000.txt", "content": "x"}]}', "path must not contain NUL bytes"),
        ("createOrUpdateFiles", '{"files": [{"path": "a\\ud800.txt", "content": "x"}]}', "lone surrogate"),
        ("createOrUpdateFiles", '{"files": [{"path": "%s", "content": "x"}]}' % ("d/" * 500 + "x"), "bytes long; the limit is 1000"),
        ("createOrUpdateFiles", '{"files": [{"path": "a/..", "content": "x"}]}', "is the project root itself, not a file"),
        ("readFiles", '{"files": "index.html"}', "files"),
        ("readFiles", '{"files": [3]}', "files"),
        ("readFiles", '{"files": []}', "files"),
        ("readFiles", '{"paths": ["index.html"]}', "files"),
    ],
)
def test_bad_calls_return_a_clear_error_result(ctx, name, raw, expected):
    content, ok = execute_tool(name, raw, ctx, LIMIT)
    assert ok is False
    assert content.startswith("Error: ")
    assert expected in content
    assert ctx.state.list_files(RUN_ID) == {}


def test_unknown_tool_lists_the_available_tools(ctx):
    content, ok = call(ctx, "writeFile", {"path": "x"})
    assert not ok
    for tool in ("terminal", "createOrUpdateFiles", "readFiles"):
        assert tool in content


def test_an_escaping_path_writes_nothing_anywhere(ctx):
    root = project(ctx)
    before = sorted(p.name for p in root.parent.iterdir())
    content, ok = call(
        ctx, "createOrUpdateFiles", {"files": [{"path": "ok.txt", "content": "x"}, {"path": "../escape.txt", "content": "x"}]}
    )
    assert not ok and content.startswith("Error: ")
    assert sorted(p.name for p in root.parent.iterdir()) == before
    assert not (root / "ok.txt").exists()
    assert ctx.state.list_files(RUN_ID) == {}


def test_oversized_file_content_is_refused_and_nothing_is_written(ctx):
    files = [{"path": "small.txt", "content": "fine"}, {"path": "huge.txt", "content": "x" * (MAX_FILE_BYTES + 1)}]
    content, ok = call(ctx, "createOrUpdateFiles", {"files": files})
    assert ok is False
    assert content.startswith("Error: huge.txt is") and f"{MAX_FILE_BYTES:,}-byte limit per file" in content
    assert not (project(ctx) / "small.txt").exists() and not (project(ctx) / "huge.txt").exists()
    assert ctx.state.list_files(RUN_ID) == {}


def test_file_content_at_the_limit_is_accepted_and_stored_in_parts(ctx):
    # Multi-byte characters, so parts are cut by bytes without splitting one.
    content = ("y" * 999 + "é") * (MAX_FILE_BYTES // 1001)
    _, ok = call(ctx, "createOrUpdateFiles", {"files": [{"path": "max.txt", "content": content}]})
    assert ok and ctx.state.list_files(RUN_ID)["max.txt"] == content
    assert (project(ctx) / "max.txt").read_text(encoding="utf-8") == content


def test_files_over_the_per_call_limit_are_refused_together(ctx):
    small = ToolContext(run_id=RUN_ID, sandbox=ctx.sandbox, state=ctx.state, command_timeout_s=5,
                        max_file_bytes=100, max_call_bytes=150)
    files = [{"path": "a.txt", "content": "a" * 100}, {"path": "b.txt", "content": "b" * 100}]
    content, ok = call(small, "createOrUpdateFiles", {"files": files})
    assert not ok and "150-byte limit per call" in content
    assert not (project(ctx) / "a.txt").exists()


def test_content_with_a_lone_surrogate_is_an_error_result(ctx):
    content, ok = call(ctx, "createOrUpdateFiles", '{"files": [{"path": "s.txt", "content": "bad \\ud800 text"}]}')
    assert not ok and "lone surrogate" in content
    assert not (project(ctx) / "s.txt").exists()


def test_a_tool_name_longer_than_64_characters_is_an_unknown_tool(ctx):
    content, ok = call(ctx, "terminal" + "x" * 300, {"command": "echo hi"})
    assert not ok and "unknown tool" in content and "at most 64 characters" in content
    assert len(content) < 400


def test_writing_over_a_directory_is_an_error_result(ctx):
    ctx.sandbox.write_files({"dir/inner.txt": "x"})
    content, ok = call(ctx, "createOrUpdateFiles", {"files": [{"path": "dir", "content": "x"}]})
    assert not ok and "is a directory" in content


def test_a_symlink_out_of_the_project_is_an_error_result(ctx, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched")
    (project(ctx) / "link.txt").symlink_to(outside)
    content, ok = call(ctx, "createOrUpdateFiles", {"files": [{"path": "link.txt", "content": "pwned"}]})
    assert not ok and content.startswith("Error: ")
    assert outside.read_text() == "untouched"


# --- bounded output ----------------------------------------------------------------------------
def test_tool_output_is_bounded_keeping_head_and_tail(ctx):
    command = "echo HEAD_MARK; for i in $(seq 1 3000); do echo line $i; done; echo TAIL_MARK"
    content, ok = call(ctx, "terminal", {"command": command}, limit=600)
    assert ok
    assert len(content) <= 600
    assert content.startswith("exit code 0\n--- stdout ---\nHEAD_MARK")
    assert content.rstrip().endswith("--- stderr ---")
    assert "TAIL_MARK" in content
    assert "characters omitted" in content


def test_read_files_output_is_bounded_too(ctx):
    ctx.sandbox.write_files({"big.txt": "B" * 50_000 + "END"})
    content, ok = call(ctx, "readFiles", {"files": ["big.txt"]}, limit=1000)
    assert ok and len(content) <= 1000
    assert content.startswith("--- big.txt ---") and content.endswith("END")
    head, rest = content.split("\n[... ", 1)
    omitted, tail = rest.split(" characters omitted ...]\n", 1)
    original = "--- big.txt ---\n" + "B" * 50_000 + "END"
    assert len(head) + int(omitted) + len(tail) == len(original)
    assert original.startswith(head) and original.endswith(tail)


def test_error_results_are_bounded_too(ctx):
    content, ok = call(ctx, "readFiles", {"files": ["x" * 900 + ".txt"]}, limit=300)
    assert content.endswith("File name too long") and len(content) <= 300
    content, ok = call(ctx, "terminal", {"command": 5, "padding": "p" * 5000}, limit=300)
    assert not ok and content.startswith("Error: ") and len(content) <= 300


def test_file_system_errors_are_error_results_not_exceptions(ctx):
    too_long = "n" * 300 + ".txt"
    content, ok = call(ctx, "createOrUpdateFiles", {"files": [{"path": too_long, "content": "x"}]})
    assert not ok and content.startswith("Error: cannot write")
    content, ok = call(ctx, "createOrUpdateFiles", {"files": [{"path": "index.html/inner.txt", "content": "x"}]})
    assert not ok and "not a directory" in content
    content, _ = call(ctx, "readFiles", {"files": [too_long, "index.html"]})
    assert "Error: cannot read" in content and "<html" in content.lower()


# --- definitions --------------------------------------------------------------------------------
def resolve(schema: dict, node):
    """Follows local $refs, so the test checks the shape whether or not refs are inlined."""
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[1]
            return resolve(schema, schema["$defs"][name])
        return {k: resolve(schema, v) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(schema, v) for v in node]
    return node


def test_tool_definitions_are_the_three_seed_tools_in_openai_format():
    definitions = tool_definitions()
    assert [d["function"]["name"] for d in definitions] == ["terminal", "createOrUpdateFiles", "readFiles"]
    by_name = {}
    for definition in definitions:
        assert definition["type"] == "function"
        function = definition["function"]
        assert set(function) == {"name", "description", "parameters"}
        assert function["description"].strip()
        params = function["parameters"]
        assert params["type"] == "object"
        by_name[function["name"]] = resolve(params, params)
    json.dumps(definitions)  # serializable as sent

    terminal = by_name["terminal"]
    assert terminal["required"] == ["command"]
    assert set(terminal["properties"]) == {"command"}
    assert terminal["properties"]["command"]["type"] == "string"

    write = by_name["createOrUpdateFiles"]
    assert write["required"] == ["files"] and set(write["properties"]) == {"files"}
    assert write["properties"]["files"]["type"] == "array"
    item = write["properties"]["files"]["items"]
    assert item["type"] == "object"
    assert set(item["properties"]) == {"path", "content"} and set(item["required"]) == {"path", "content"}
    assert item["properties"]["path"]["type"] == "string" and item["properties"]["content"]["type"] == "string"

    read = by_name["readFiles"]
    assert read["required"] == ["files"] and set(read["properties"]) == {"files"}
    assert read["properties"]["files"]["type"] == "array"
    assert read["properties"]["files"]["items"]["type"] == "string"
