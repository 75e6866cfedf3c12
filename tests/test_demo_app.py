"""The bundled demo's app (pixie/demo/todo_app.json): what a browser would get wrong."""

from __future__ import annotations

import json
import re

from pixie.demo import DEMO_SCRIPT


def demo_files() -> dict[str, str]:
    script = json.loads(DEMO_SCRIPT.read_text(encoding="utf-8"))
    files: dict[str, str] = {}
    for turn in script["turns"]:
        for call in turn.get("tool_calls") or []:
            if call["name"] == "createOrUpdateFiles":
                files.update({f["path"]: f["content"] for f in call["arguments"]["files"]})
    return files


def test_the_checkbox_is_not_stretched_by_the_text_input_rule():
    css = demo_files()["style.css"]
    rules = dict(re.findall(r"([^{}]+)\{([^}]*)\}", css))
    stretching = [selector.strip() for selector, body in rules.items() if "flex: 1" in body]
    # A bare `input` selector would also match the list's checkboxes.
    assert all(not re.fullmatch(r"input", s) for s in stretching), stretching
    checkbox = next(body for selector, body in rules.items() if "checkbox" in selector)
    assert "flex: none" in checkbox


def test_the_page_declares_its_icon_so_the_browser_asks_for_no_favicon():
    html = demo_files()["index.html"]
    icon = re.search(r'<link rel="icon" href="([^"]+)"', html)
    assert icon and icon.group(1).startswith("data:image/svg+xml,")  # inline: no request, no 404
