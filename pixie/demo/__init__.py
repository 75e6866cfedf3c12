"""The bundled scripted demo: a todo app, played through the real workflow and tools."""

from pathlib import Path

DEMO_SCRIPT = Path(__file__).parent / "todo_app.json"
