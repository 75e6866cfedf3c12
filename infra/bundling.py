"""The Lambda code asset, bundled without Docker.

One asset serves every function: its root holds the repo's `lambdas/` package (so handlers are
`lambdas.handlers.<name>.handler`) next to the runtime dependencies, which pip installs from
`infra/lambda-requirements.txt` as prebuilt wheels for the Lambda platform (arm64, CPython 3.13;
see infra/lambda_deps.py). Then CPython 3.13 compiles everything to bytecode: `/var/task` is
read-only, so without .pyc files in the bundle every cold start would compile openai, pydantic
and e2b from source again. No compiler, no container: pip, the package index and a python3.13.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from infra.lambda_deps import (
    BYTECODE_PYTHON_ENV,
    PIP_PLATFORMS,
    PYTHON_VERSION,
    REPO_ROOT,
    REQUIREMENTS,
    bytecode_python,
    compile_command,
    platform_args,
)

# Everything under the repo root is left out of the asset's fingerprint except the Lambda package,
# the lock file and the bundler: any change to those (and only those) makes a new bundle.
ASSET_EXCLUDE = [
    "*",
    ".*",  # "*" skips dotfiles (.venv, .git, .pytest_cache): exclude them explicitly
    "!lambdas",
    "!lambdas/**",
    "!infra",
    "!infra/lambda-requirements.txt",
    "!infra/lambda_deps.py",
    "!infra/bundling.py",
    "__pycache__",
    "*.pyc",
]


def pip_install_command(target: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--no-deps",  # the lock file is complete
        "--require-hashes",
        *platform_args(),
        "--no-compile",  # .pyc from this interpreter would not match the Lambda's 3.13: see compile_command
        "--target",
        str(target),
        "--requirement",
        str(REQUIREMENTS),
    ]


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """pip-installs the locked wheels for the Lambda platform, copies the `lambdas` package and
    compiles both with CPython 3.13."""

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: object) -> bool:
        out = Path(output_dir)
        try:
            subprocess.run(pip_install_command(out), check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            # Returning False would make CDK fall back to Docker with a placeholder image: fail clearly.
            raise RuntimeError(
                f"bundling the Lambda code failed: pip could not install {REQUIREMENTS.name} for "
                f"{'/'.join(PIP_PLATFORMS)} / Python {PYTHON_VERSION} ({exc}). It needs the package index (PyPI)."
            ) from exc
        shutil.copytree(
            REPO_ROOT / "lambdas",
            out / "lambdas",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store"),
            dirs_exist_ok=True,
        )
        python = bytecode_python()
        if python is None:
            print(
                f"pixie bundling: no CPython {PYTHON_VERSION} found (python{PYTHON_VERSION} on PATH, pyenv, or "
                f"${BYTECODE_PYTHON_ENV}): the bundle has no bytecode and each cold start compiles from source.",
                file=sys.stderr,
            )
            return True
        done = subprocess.run(compile_command(python, out), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"compiling the Lambda bundle with {python} failed:\n{(done.stdout + done.stderr)[-2000:]}")
        return True


def lambda_code() -> lambda_.AssetCode:
    """The shared code asset. Bundling runs at synth time unless the stack is excluded from bundling
    (`App(context={"aws:cdk:bundling-stacks": []})`, as the unit tests do)."""
    return lambda_.Code.from_asset(
        str(REPO_ROOT),
        exclude=ASSET_EXCLUDE,
        asset_hash_type=AssetHashType.SOURCE,
        bundling=BundlingOptions(
            # Required by the API but never pulled: PipLocalBundling always bundles (or raises).
            image=DockerImage.from_registry("pixie-local-bundling-only"),
            local=PipLocalBundling(),
        ),
    )
