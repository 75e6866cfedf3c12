"""The Lambda bundle's dependencies: which packages, for which platform, locked how.

pyproject.toml is the one source of truth for versions. `python -m infra.lambda_deps` resolves the
Lambda's share of its pins (LAMBDA_PACKAGES) for the Lambda platform and writes
infra/lambda-requirements.txt, every wheel pinned with its sha256; infra/bundling.py installs
exactly that file. tests/test_infra.py fails when the two files disagree on a package.

Pure Python (no CDK import): the bundler, the bench and the tests all read it."""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = REPO_ROOT / "pyproject.toml"
REQUIREMENTS = REPO_ROOT / "infra" / "lambda-requirements.txt"

PYTHON_VERSION = "3.13"  # lambda_.Runtime.PYTHON_3_13
# Lambda's Python 3.13 runtime (Amazon Linux 2023, glibc 2.34) runs manylinux_2_28 wheels, and
# some packages (pyqwest >= 0.12, which e2b >= 2.56 needs) publish aarch64 wheels only for it.
# pip takes the first platform's wheels where both exist.
PIP_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux2014_aarch64")  # lambda_.Architecture.ARM_64

# The packages of pyproject.toml's dependencies the functions import (moto is the local engine's,
# boto3 comes with the Lambda runtime).
LAMBDA_PACKAGES = ("aws-lambda-powertools", "openai", "e2b")
# Pulled in by aws-xray-sdk but shipped by the Lambda runtime with its boto3: bundling another
# botocore next to the runtime's boto3 would mix versions.
RUNTIME_PROVIDED = ("botocore", "urllib3")

# A CPython of the Lambda's version writes the bundle's bytecode (found on PATH or under pyenv
# unless this variable names one).
BYTECODE_PYTHON_ENV = "PIXIE_BUNDLE_PYTHON"
CACHE_TAG = "cpython-" + PYTHON_VERSION.replace(".", "")  # the .pyc names Lambda's Python looks for


def normalize(name: str) -> str:
    """PEP 503 name: lowercase, runs of -_. as one hyphen."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_pins() -> dict[str, str]:
    """{normalized name: version} of every `name[extras]==version` in pyproject.toml (all groups)."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    requirements = list(project.get("dependencies", []))
    for group in project.get("optional-dependencies", {}).values():
        requirements += group
    pins = {}
    for requirement in requirements:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*==\s*([^\s;,]+)\s*", requirement)
        if match:
            pins[normalize(match.group(1))] = match.group(3)
    return pins


def lambda_requirements() -> list[str]:
    """The top-level requirements of the bundle, exactly as pyproject.toml writes them."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    wanted = {normalize(name) for name in LAMBDA_PACKAGES}
    found = [r for r in project["dependencies"] if normalize(re.split(r"[\[=<>!~ ;]", r, 1)[0]) in wanted]
    if len(found) != len(wanted):
        raise SystemExit(f"pyproject.toml must pin each of {', '.join(LAMBDA_PACKAGES)} in [project].dependencies")
    return found


def locked_pins(path: Path = REQUIREMENTS) -> dict[str, tuple[str, list[str]]]:
    """{normalized name: (version, [sha256, ...])} from a hash-locked requirements file."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        name, _, version = words[0].partition("==")
        hashes = [w.split(":", 1)[1] for w in words[1:] if w.startswith("--hash=sha256:")]
        pins[normalize(name)] = (version, hashes)
    return pins


def platform_args() -> list[str]:
    """pip options that select wheels for the Lambda platform."""
    args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", PYTHON_VERSION]
    for platform in PIP_PLATFORMS:
        args += ["--platform", platform]
    return args


def resolve(requirements: list[str]) -> list[tuple[str, str, str]]:
    """(normalized name, version, sha256) of every wheel pip picks for the Lambda platform."""
    with tempfile.TemporaryDirectory(prefix="pixie-lock-") as scratch:
        report = Path(scratch) / "report.json"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--dry-run",
             "--ignore-installed", "--report", str(report), *platform_args(), "--target", str(Path(scratch) / "t"),
             *requirements],
            check=True,
        )
        installs = json.loads(report.read_text())["install"]
    resolved = []
    for item in installs:
        name = normalize(item["metadata"]["name"])
        if name in RUNTIME_PROVIDED:
            continue
        resolved.append((name, item["metadata"]["version"], item["download_info"]["archive_info"]["hashes"]["sha256"]))
    return sorted(resolved)


def render(requirements: list[str], resolved: list[tuple[str, str, str]]) -> str:
    platforms = " ".join(f"--platform {p}" for p in PIP_PLATFORMS)
    header = f"""\
# Runtime dependencies of the Lambda functions (CPython {PYTHON_VERSION}, arm64), locked with hashes.
# GENERATED by `python -m infra.lambda_deps` from pyproject.toml; do not edit by hand.
# Top-level: {", ".join(requirements)}
# Platforms: {", ".join(PIP_PLATFORMS)} (pip prefers the first where both exist).
# Left out: {", ".join(RUNTIME_PROVIDED)} (the Lambda runtime ships them with its boto3).
# infra/bundling.py installs it with:
#   pip install --no-deps --require-hashes --only-binary=:all: --implementation cp \\
#       {platforms} --python-version {PYTHON_VERSION} --target <asset> -r infra/lambda-requirements.txt

"""
    body = "".join(f"{name}=={version} \\\n    --hash=sha256:{sha}\n" for name, version, sha in resolved)
    return header + body


def _cache_tag(python: str) -> str | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(sys.implementation.cache_tag)"],
            capture_output=True, text=True, timeout=30, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def bytecode_python() -> str | None:
    """A CPython 3.13 to compile the bundle with: $PIXIE_BUNDLE_PYTHON (which must be one), else
    the first that works of python3.13 on PATH and pyenv's 3.13 installs; None if there is none."""
    chosen = os.environ.get(BYTECODE_PYTHON_ENV)
    if chosen:
        if _cache_tag(chosen) != CACHE_TAG:
            raise RuntimeError(f"{BYTECODE_PYTHON_ENV}={chosen} is not a working CPython {PYTHON_VERSION}")
        return chosen
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates = [f"python{PYTHON_VERSION}", *sorted(glob.glob(f"{pyenv_root}/versions/{PYTHON_VERSION}*/bin/python{PYTHON_VERSION}"))]
    return next((c for c in candidates if _cache_tag(c) == CACHE_TAG), None)


def compile_command(python: str, target: Path) -> list[str]:
    """Unchecked-hash pycs: used without comparing the source's timestamp or hash, so nothing about
    the zip's file times can make the read-only /var/task fall back to compiling."""
    return [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(target)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the lock file is not what pyproject.toml resolves to")
    args = parser.parse_args(argv)
    requirements = lambda_requirements()
    text = render(requirements, resolve(requirements))
    if args.check:
        current = REQUIREMENTS.read_text(encoding="utf-8")
        print("up to date" if current == text else f"{REQUIREMENTS} is out of date: run python -m infra.lambda_deps")
        return 0 if current == text else 1
    REQUIREMENTS.write_text(text, encoding="utf-8")
    print(f"wrote {REQUIREMENTS.relative_to(REPO_ROOT)}: {len(text.splitlines())} lines")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
