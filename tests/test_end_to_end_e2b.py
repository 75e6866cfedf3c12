"""A whole run with `--sandbox e2b` on the embedded engine, with the E2B cloud replaced by a fake
at the SDK boundary (E2B is not reachable from tests): the real adapter, real state machine and
real handlers; sandboxes created once and reconnected by id in every later step."""

from __future__ import annotations

import json

import e2b
import pytest

from pixie.local_run import RunOptions, run_locally

KEY = "e2b_end_to_end_fake_key"


class FakeCloud:
    """What E2B keeps between Lambda invocations: sandboxes by id, each with its files."""

    sandboxes: dict[str, "FakeSandbox"] = {}
    calls: list[tuple] = []
    preview_answers: list[str] = []  # what the dev server answers the done-check, in turn (then 200)


class FakeCommands:
    def __init__(self, box: "FakeSandbox") -> None:
        self.box = box

    def run(self, cmd, timeout=None, cwd=None, **_):
        FakeCloud.calls.append(("run", self.box.sandbox_id, cmd, cwd))
        if "http://localhost:3000/" in cmd:  # the done-check asks the dev server for /
            answer = FakeCloud.preview_answers.pop(0) if FakeCloud.preview_answers else "200"
            return e2b.CommandResult(stdout=f"{answer}\n", stderr="", exit_code=0, error=None)
        return e2b.CommandResult(stdout=f"ran in {cwd}\n", stderr="", exit_code=0, error=None)


class FakeFiles:
    def __init__(self, box: "FakeSandbox") -> None:
        self.box = box

    def write_files(self, files):
        self.box.store.update({entry["path"]: entry["data"] for entry in files})

    def read(self, path, **_):
        if path not in self.box.store:
            raise e2b.FileNotFoundException(f"path '{path}' does not exist")
        return self.box.store[path]


class FakeSandbox:
    def __init__(self, sandbox_id: str) -> None:
        self.sandbox_id = sandbox_id
        self.store: dict[str, str] = {}  # the sandbox's file system, by absolute path
        self.files = FakeFiles(self)
        self.commands = FakeCommands(self)
        self.killed = False

    @classmethod
    def create(cls, template=None, timeout=None, api_key=None, **_):
        FakeCloud.calls.append(("create", template, timeout, api_key))
        box = cls(f"sbx{len(FakeCloud.sandboxes)}")
        FakeCloud.sandboxes[box.sandbox_id] = box
        return box

    @classmethod
    def connect(cls, sandbox_id, timeout=None, api_key=None, **_):
        FakeCloud.calls.append(("connect", sandbox_id, api_key))
        if sandbox_id not in FakeCloud.sandboxes:
            raise e2b.SandboxNotFoundException(f"sandbox {sandbox_id} not found")
        return FakeCloud.sandboxes[sandbox_id]

    def get_host(self, port):
        return f"{port}-{self.sandbox_id}.e2b.app"

    def kill(self):
        self.killed = True
        return True


@pytest.fixture(autouse=True)
def fake_e2b(monkeypatch):
    FakeCloud.sandboxes, FakeCloud.calls, FakeCloud.preview_answers = {}, [], []
    monkeypatch.setattr(e2b, "Sandbox", FakeSandbox)
    monkeypatch.setenv("E2B_API_KEY", KEY)


def test_e2b_run_creates_once_reconnects_by_id_and_returns_the_https_preview(tmp_path, write_script):
    script = write_script(
        [
            {
                "content": None,
                "tool_calls": [
                    {
                        "name": "createOrUpdateFiles",
                        "arguments": {"files": [{"path": "/home/user/app/page.tsx", "content": "export default 1"}]},
                    },
                    {"name": "terminal", "arguments": {"command": "npm install zod --yes"}},
                    {"name": "readFiles", "arguments": {"files": ["app/page.tsx"]}},
                ],
            },
            {"content": "<task_summary>Edited the page</task_summary>"},
        ]
    )
    record = run_locally("Edit the page", RunOptions(model=f"scripted:{script}", sandbox="e2b", pixie_home=tmp_path))

    assert record["status"] == "SUCCEEDED", record["cause"]
    assert record["url"] == "https://3000-sbx0.e2b.app"
    assert record["files"] == {"app/page.tsx": "export default 1"}
    creates = [c for c in FakeCloud.calls if c[0] == "create"]
    assert creates == [("create", "pixie", 3600, KEY)]  # one sandbox, template `pixie`
    assert {c[1] for c in FakeCloud.calls if c[0] == "connect"} == {"sbx0"}
    assert FakeCloud.sandboxes["sbx0"].store == {"/home/user/app/page.tsx": "export default 1"}
    run = next(c for c in FakeCloud.calls if c[0] == "run")
    assert "npm install zod --yes" in run[2] and run[3] == "/home/user"
    read_result = [m for m in record["conversation"] if m["role"] == "tool"][2]["content"]
    assert "export default 1" in read_result
    assert KEY not in json.dumps(record)


def test_e2b_sandbox_is_killed_when_the_run_fails(tmp_path):
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"turns": [{"content": "thinking"}]}))
    record = run_locally("Think", RunOptions(model=f"scripted:{script}", sandbox="e2b", pixie_home=tmp_path))

    assert record["status"] == "FAILED" and record["error"] == "ScriptExhausted"
    assert FakeCloud.sandboxes["sbx0"].killed


def test_e2b_done_check_asks_the_dev_server_and_a_500_goes_back_to_the_model(tmp_path, write_script):
    FakeCloud.preview_answers = ["500\nError: Module not found: Can't resolve './Counter'"]
    summary = {"content": "<task_summary>Built it</task_summary>"}
    script = write_script([summary, summary])
    record = run_locally("Build it", RunOptions(model=f"scripted:{script}", sandbox="e2b", pixie_home=tmp_path))

    assert record["status"] == "SUCCEEDED", record["cause"]
    assert record["iterations"] == 2
    checks = [c for c in FakeCloud.calls if c[0] == "run" and "localhost:3000" in c[2]]
    assert len(checks) == 2 and all(c[3] == "/home/user" for c in checks)  # asked inside the sandbox
    told = [m["content"] for m in record["conversation"] if m["role"] == "user" and "[pixie]" in str(m["content"])]
    assert len(told) == 1 and "GET / answered 500" in told[0] and "Can't resolve './Counter'" in told[0]
