"""The state machine as a graph for the console, read from agent.asl.json itself: nodes (states,
with the states of a Map nested in it), edges (Next, Choice rules, Default, Catch) and a simple
layered layout (top to bottom, longest path from StartAt, back edges drawn as loops)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

NODE_W, NODE_H = 168, 38
CHILD_H, CHILD_GAP = 32, 8
GAP_X, GAP_Y, PAD = 36, 56, 24

_OPERATORS = {
    "BooleanEquals": "=", "StringEquals": "=", "NumericEquals": "=", "NumericGreaterThanEquals": "≥",
    "NumericGreaterThan": ">", "NumericLessThan": "<", "NumericLessThanEquals": "≤",
}


def _condition(rule: dict[str, Any]) -> str:
    """A Choice rule in a few words: `hasSummary = true`, `iteration ≥ maxIterations`."""
    variable = str(rule.get("Variable", "")).removeprefix("$.")
    for key, value in rule.items():
        if key in ("Variable", "Next"):
            continue
        if key == "IsPresent":
            return f"{variable} {'present' if value else 'absent'}"
        path = key.endswith("Path")
        symbol = _OPERATORS.get(key.removesuffix("Path"), key)
        shown = str(value).removeprefix("$.") if path else json.dumps(value)
        return f"{variable} {symbol} {shown}"
    return "rule"


def _edges_of(name: str, state: dict[str, Any]) -> list[dict[str, Any]]:
    edges = []
    if state.get("Next"):
        edges.append({"from": name, "to": state["Next"], "kind": "next", "label": ""})
    for rule in state.get("Choices") or []:
        edges.append({"from": name, "to": rule["Next"], "kind": "choice", "label": _condition(rule)})
    if state.get("Default"):
        edges.append({"from": name, "to": state["Default"], "kind": "default", "label": "otherwise"})
    for catch in state.get("Catch") or []:
        errors = catch.get("ErrorEquals") or []
        label = "error" if errors == ["States.ALL"] else ", ".join(errors)
        edges.append({"from": name, "to": catch["Next"], "kind": "catch", "label": label})
    return edges


def _layers(start: str, names: list[str], edges: list[dict[str, Any]]) -> tuple[dict[str, int], set[tuple[str, str]]]:
    """Longest-path layer of each top-level state over the graph without its back edges."""
    succ: dict[str, list[str]] = {n: [] for n in names}
    for edge in edges:
        if edge["from"] in succ and edge["to"] in succ and edge["to"] not in succ[edge["from"]]:
            succ[edge["from"]].append(edge["to"])
    back: set[tuple[str, str]] = set()
    order: list[str] = []
    state: dict[str, int] = {}  # 1 on the DFS stack, 2 done

    def visit(node: str) -> None:
        state[node] = 1
        for nxt in succ[node]:
            if state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                visit(nxt)
        state[node] = 2
        order.append(node)

    for root in [start, *names]:
        if root not in state:
            visit(root)
    layer = dict.fromkeys(names, 0)
    for node in reversed(order):  # topological order of the acyclic part
        for nxt in succ[node]:
            if (node, nxt) not in back:
                layer[nxt] = max(layer[nxt], layer[node] + 1)
    return layer, back


def graph(definition: dict[str, Any]) -> dict[str, Any]:
    """{"nodes": [{id, type, parent, start, end, comment, x, y, w, h}], "edges": [{from, to, kind,
    label, back}], "width", "height"}; coordinates in SVG pixels."""
    states: dict[str, Any] = definition["States"]
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[dict[str, Any]] = []
    children: dict[str, list[str]] = {}

    def add(name: str, state: dict[str, Any], parent: str | None, start: bool) -> None:
        nodes[name] = {
            "id": name, "type": state.get("Type"), "parent": parent, "start": start,
            "end": bool(state.get("End")) or state.get("Type") in ("Succeed", "Fail"),
            "comment": state.get("Comment", ""),
        }
        edges.extend(_edges_of(name, state))
        processors = [state.get("ItemProcessor") or state.get("Iterator")] + list(state.get("Branches") or [])
        for processor in filter(None, processors):
            for child, child_state in processor["States"].items():
                children.setdefault(name, []).append(child)
                add(child, child_state, name, child == processor.get("StartAt"))

    for name, state in states.items():
        add(name, state, None, name == definition["StartAt"])

    top = list(states)
    layer, back = _layers(definition["StartAt"], top, edges)
    for edge in edges:
        edge["back"] = (edge["from"], edge["to"]) in back

    for name in top:
        inner = children.get(name, [])
        nodes[name]["w"] = NODE_W
        nodes[name]["h"] = NODE_H + (len(inner) * (CHILD_H + CHILD_GAP) + CHILD_GAP if inner else 0)
    rows: dict[int, list[str]] = {}
    for name in top:
        rows.setdefault(layer[name], []).append(name)
    position: dict[str, float] = {}
    width = max(len(r) for r in rows.values()) * (NODE_W + GAP_X) - GAP_X + 2 * PAD
    y = PAD
    for index in sorted(rows):
        row = rows[index]

        def barycenter(name: str) -> float:  # under its predecessors, to keep edges short
            xs = [position[e["from"]] for e in edges if e["to"] == name and e["from"] in position and not e["back"]]
            return sum(xs) / len(xs) if xs else 0.0

        row.sort(key=barycenter)
        row_width = len(row) * (NODE_W + GAP_X) - GAP_X
        x = (width - row_width) / 2
        height = max(nodes[n]["h"] for n in row)
        for name in row:
            nodes[name].update(x=round(x), y=y)
            position[name] = x + NODE_W / 2
            for i, child in enumerate(children.get(name, [])):
                nodes[child].update(x=round(x + 12), y=y + NODE_H + CHILD_GAP + i * (CHILD_H + CHILD_GAP), w=NODE_W - 24, h=CHILD_H)
            x += NODE_W + GAP_X
        y += height + GAP_Y
    return {"nodes": list(nodes.values()), "edges": edges, "width": round(width), "height": y - GAP_Y + PAD}


def graph_from_file(path: Path) -> dict[str, Any]:
    return graph(json.loads(Path(path).read_text(encoding="utf-8")))
