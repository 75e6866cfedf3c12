"""The Lambda code asset, built the way the deploy builds it, and its unzipped size.

infra/bundling.py bundles one asset for every function: pip installs the locked wheels of
infra/lambda-requirements.txt for the Lambda platform (manylinux_2_28 / manylinux2014 aarch64,
CPython 3.13, --no-deps, --require-hashes, --no-compile), copies the `lambdas` package next to
them, and compiles the tree with CPython 3.13 (unchecked-hash pycs). This module asks
infra/bundling.py for that exact pip command (in a subprocess: importing it starts the CDK's jsii
runtime) and repeats the bundling into a temporary directory, measuring the size before and after
the bytecode. Downloads are cached under the system temp directory so later runs are fast."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PIP_CACHE = Path(tempfile.gettempdir()) / "pixie-bench-pip-cache"
TARGET_PLACEHOLDER = "/__pixie_bench_target__"

# Used only when infra/bundling.py cannot be imported (the deploy extra not installed): the same
# command, kept in step with infra/bundling.py by hand.
FALLBACK_PIP_ARGS = [
    "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input", "--no-deps",
    "--require-hashes", "--only-binary=:all:", "--implementation", "cp", "--platform", "manylinux_2_28_aarch64",
    "--platform", "manylinux2014_aarch64", "--python-version", "3.13", "--no-compile", "--target", TARGET_PLACEHOLDER,
    "--requirement", str(REPO_ROOT / "infra" / "lambda-requirements.txt"),
]


def deploy_pip_command() -> tuple[list[str], str]:
    """(pip command with TARGET_PLACEHOLDER as the target, where it came from)."""
    code = (
        "import json, sys; from pathlib import Path; from infra.bundling import pip_install_command; "
        f"print(json.dumps(pip_install_command(Path({TARGET_PLACEHOLDER!r}))))"
    )
    env = {**os.environ, "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if out.returncode == 0:
        return json.loads(out.stdout.strip().splitlines()[-1]), "infra.bundling.pip_install_command"
    return [sys.executable, *FALLBACK_PIP_ARGS], "bench.asset.FALLBACK_PIP_ARGS (infra.bundling not importable)"


def tree_bytes(root: Path) -> int:
    """Unzipped size: the sum of the regular files' sizes (symlinks not followed)."""
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def _compiled_bytes(target: Path) -> int | None:
    """The tree's size after infra/bundling.py's compile step; None without a CPython 3.13."""
    from infra.lambda_deps import bytecode_python, compile_command

    python = bytecode_python()
    if python is None:
        return None
    subprocess.run(compile_command(python, target), check=True, capture_output=True)
    return tree_bytes(target)


def measure() -> dict:
    """{"asset_mb": MB (10^6 bytes) or None, ...details}; None with a reason when pip fails."""
    command, source = deploy_pip_command()
    with tempfile.TemporaryDirectory(prefix="pixie-bench-asset-") as scratch:
        target = Path(scratch) / "asset"
        command = [str(target) if part == TARGET_PLACEHOLDER else part for part in command]
        env = {**os.environ, "PIP_CACHE_DIR": str(PIP_CACHE)}
        out = subprocess.run(command, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            reason = (out.stderr.strip().splitlines() or ["pip failed"])[-1]
            return {"asset_mb": None, "asset_error": f"pip could not install the bundle: {reason}", "asset_source": source}
        shutil.copytree(
            REPO_ROOT / "lambdas",
            target / "lambdas",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store"),
            dirs_exist_ok=True,
        )
        total = tree_bytes(target)
        packages = {entry.name: tree_bytes(entry) if entry.is_dir() else entry.stat().st_size for entry in target.iterdir()}
        with_bytecode = _compiled_bytes(target)
    largest = sorted(((n, b) for n, b in packages.items() if not n.endswith(".dist-info")), key=lambda x: -x[1])[:8]
    return {
        "asset_mb": round(total / 1e6, 1),
        "asset_bytes": total,
        "asset_largest_packages_mb": {name: round(size / 1e6, 1) for name, size in largest},
        "asset_lambdas_package_kb": round(packages.get("lambdas", 0) / 1e3, 1),
        "asset_with_bytecode_mb": None if with_bytecode is None else round(with_bytecode / 1e6, 1),
        "asset_e2b_version": next((p[4:-10] for p in packages if p.startswith("e2b-") and p.endswith(".dist-info")), None),
        "asset_source": source,
        "asset_note": "one code asset serves every function; boto3/botocore are the runtime's own (not bundled)",
    }
