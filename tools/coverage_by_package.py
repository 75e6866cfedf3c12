"""`make coverage`'s summary: lines and branches covered per package, from `coverage json`'s
report (the suite's data combined with its subprocesses'), as a Markdown table.

    python -m tools.coverage_by_package coverage.json
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

PACKAGES = ["pixie", "statemachine", "lambdas/handlers", "lambdas/logic", "lambdas/dal", "infra"]


def package_of(path: str) -> str | None:
    return next((p for p in sorted(PACKAGES, key=len, reverse=True) if path.startswith(p + "/")), None)


def percent(covered: int, total: int) -> str:
    return f"{100 * covered / total:.1f} %" if total else "n/a"


def table(report: dict) -> str:
    sums: dict[str, list[int]] = {p: [0, 0, 0, 0] for p in [*PACKAGES, "all"]}
    for path, data in report["files"].items():
        package = package_of(path)
        summary = data["summary"]
        numbers = [summary["covered_lines"], summary["num_statements"], summary.get("covered_branches", 0), summary.get("num_branches", 0)]
        for key in filter(None, (package, "all")):
            sums[key] = [a + b for a, b in zip(sums[key], numbers)]
    rows = ["| package | lines | branches |", "| --- | --- | --- |"]
    for name, (lines, statements, branches, all_branches) in sums.items():
        label = "**all**" if name == "all" else f"`{name.replace('/', '.')}`"
        rows.append(f"| {label} | {percent(lines, statements)} of {statements:,} | {percent(branches, all_branches)} of {all_branches:,} |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    report = json.loads(Path(argv[0] if argv else "coverage.json").read_text(encoding="utf-8"))
    print(f"coverage on {datetime.now(timezone.utc):%Y-%m-%d}, subprocesses included:\n")
    print(table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
