"""The Lambda code asset, bundled without Docker.

One asset serves the four functions: its root holds the repo's `lambdas/` package (so handlers are
`lambdas.handlers.<name>.handler`) next to the runtime dependencies, which pip installs from
`infra/lambda-requirements.txt` as prebuilt wheels for the Lambda platform (manylinux2014 aarch64,
CPython 3.13). No compiler, no container: only pip and the package index are needed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO_ROOT / "infra" / "lambda-requirements.txt"

PYTHON_VERSION = "3.13"
PIP_PLATFORM = "manylinux2014_aarch64"  # matches lambda_.Architecture.ARM_64

# Everything under the repo root is left out of the asset's fingerprint except the Lambda package,
# the lock file and this bundler: any change to those (and only those) makes a new bundle.
ASSET_EXCLUDE = [
    "*",
    ".*",  # "*" skips dotfiles (.venv, .git, .pytest_cache): exclude them explicitly
    "!lambdas",
    "!lambdas/**",
    "!infra",
    "!infra/lambda-requirements.txt",
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
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--platform",
        PIP_PLATFORM,
        "--python-version",
        PYTHON_VERSION,
        "--no-compile",  # .pyc from this interpreter would not match the Lambda's 3.13
        "--target",
        str(target),
        "--requirement",
        str(REQUIREMENTS),
    ]


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """pip-installs the locked wheels for the Lambda platform and copies the `lambdas` package."""

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: object) -> bool:
        out = Path(output_dir)
        try:
            subprocess.run(pip_install_command(out), check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            # Returning False would make CDK fall back to Docker with a placeholder image: fail clearly.
            raise RuntimeError(
                f"bundling the Lambda code failed: pip could not install {REQUIREMENTS.name} for "
                f"{PIP_PLATFORM} / Python {PYTHON_VERSION} ({exc}). It needs the package index (PyPI)."
            ) from exc
        shutil.copytree(
            REPO_ROOT / "lambdas",
            out / "lambdas",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store"),
            dirs_exist_ok=True,
        )
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
