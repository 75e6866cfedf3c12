"""The E2B sandbox template `pixie`: a Next.js project (App Router, TypeScript, Tailwind) in
/home/user with its dev server on port 3000, defined with E2B's Template SDK.

    E2B_API_KEY=e2b_... python -m infra.e2b_template build [--name pixie]
    python -m infra.e2b_template dockerfile     # print the equivalent Dockerfile, offline

The agent's rules for this template (relative paths, never start the dev server, npm through
the terminal) are in lambdas/logic/sandboxes/e2b_rules.md."""

from __future__ import annotations

import argparse
import os
import sys

from e2b import Template, wait_for_port

from lambdas.logic.sandboxes.base import PREVIEW_PORT as DEV_SERVER_PORT
from lambdas.logic.sandboxes.e2b_sandbox import PROJECT_ROOT as PROJECT_DIR

NEXT_VERSION = "15.3.3"


def pixie_template():
    scaffold = (
        f"npx --yes create-next-app@{NEXT_VERSION} /tmp/app --ts --tailwind --eslint --app "
        "--no-src-dir --import-alias '@/*' --use-npm --yes --disable-git"
    )
    return (
        Template()
        .from_node_image("22-slim")
        .set_workdir(PROJECT_DIR)  # E2B templates run as `user`, home /home/user, by default
        # create-next-app wants an empty folder; /home/user already holds dotfiles.
        .run_cmd([scaffold, f"cp -r /tmp/app/. {PROJECT_DIR}/", "rm -rf /tmp/app"])
        .set_start_cmd(
            f"npx next dev --turbopack --hostname 0.0.0.0 --port {DEV_SERVER_PORT}",
            wait_for_port(DEV_SERVER_PORT),
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.e2b_template")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the template on E2B (needs E2B_API_KEY)")
    build.add_argument("--name", default=os.environ.get("PIXIE_TEMPLATE", "pixie"))
    build.add_argument("--cpu", type=int, default=2)
    build.add_argument("--memory-mb", type=int, default=2048)
    commands.add_parser("dockerfile", help="print the template as a Dockerfile (offline)")
    args = parser.parse_args(argv)

    template = pixie_template()
    if args.command == "dockerfile":
        print(Template.to_dockerfile(template))
        return 0
    if not os.environ.get("E2B_API_KEY"):
        parser.error("E2B_API_KEY is not set")
    info = Template.build(
        template,
        args.name,
        cpu_count=args.cpu,
        memory_mb=args.memory_mb,
        on_build_logs=lambda entry: print(entry, file=sys.stderr),
    )
    print(f"built template {args.name}: {info}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
