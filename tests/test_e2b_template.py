"""The E2B template and the E2B sandbox adapter must agree: the dev server listens on the port
GetSandboxUrl looks up, in the directory the tools treat as the project root."""

import pytest
from e2b import Template

from infra.e2b_template import main, pixie_template
from lambdas.logic.sandboxes.base import PREVIEW_PORT
from lambdas.logic.sandboxes.e2b_sandbox import PROJECT_ROOT
from lambdas.logic.prompts import template_rules


def test_template_serves_next_dev_on_the_preview_port_in_the_project_root():
    dockerfile = Template.to_dockerfile(pixie_template())
    assert f"WORKDIR {PROJECT_ROOT}" in dockerfile
    assert "create-next-app" in dockerfile
    entrypoint = next(line for line in dockerfile.splitlines() if line.startswith("ENTRYPOINT"))
    assert "next dev" in entrypoint and f"--port {PREVIEW_PORT}" in entrypoint


def test_template_rules_tell_the_model_not_to_start_the_server():
    rules = template_rules("e2b")
    assert "never run `npm run dev`" in rules
    assert "relative paths" in rules.lower()


def test_build_refuses_without_a_key(monkeypatch, capsys):
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["build"])
    assert exited.value.code == 2
    assert "E2B_API_KEY is not set" in capsys.readouterr().err
