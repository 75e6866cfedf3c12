"""createOrUpdateFiles and readFiles: the project's files, in the sandbox and in the run's state."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from lambdas.logic.errors import ToolError
from lambdas.logic.sandboxes.base import normalize_project_path
from lambdas.logic.tools.base import Tool, ToolContext


class FileToWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: StrictStr = Field(description="Path relative to the project root")
    content: StrictStr = Field(description="The whole new content of the file")


class CreateOrUpdateFilesArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    files: list[FileToWrite] = Field(min_length=1)


class ReadFilesArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    files: list[StrictStr] = Field(min_length=1, description="Paths relative to the project root")


def create_or_update_files(args: CreateOrUpdateFilesArgs, ctx: ToolContext) -> str:
    # Everything is checked before anything is written: a call that breaks a limit writes nothing.
    files: dict[str, str] = {}
    total = 0
    for file in args.files:
        path = normalize_project_path(file.path, ctx.sandbox.project_root)
        try:
            size = len(file.content.encode("utf-8"))
        except UnicodeEncodeError:
            raise ToolError(f"the content of {path} is not valid Unicode text (it has a lone surrogate)") from None
        if size > ctx.max_file_bytes:
            raise ToolError(f"{path} is {size:,} bytes, over the {ctx.max_file_bytes:,}-byte limit per file; split it")
        total += size
        files[path] = file.content
    if total > ctx.max_call_bytes:
        raise ToolError(
            f"these files are {total:,} bytes together, over the {ctx.max_call_bytes:,}-byte limit per call; "
            "write them in several calls"
        )
    ctx.sandbox.write_files(files)
    # Background state, like AgentKit's network.state.data.files: the model only needs an ack.
    ctx.state.put_files(ctx.run_id, files)
    return "Wrote " + ", ".join(files)


def read_files(args: ReadFilesArgs, ctx: ToolContext) -> str:
    parts = []
    for path in args.files:
        try:
            parts.append(f"--- {path} ---\n{ctx.sandbox.read_file(path)}")
        except ToolError as exc:  # one bad path should not hide the others
            parts.append(f"--- {path} ---\nError: {exc}")
    return "\n".join(parts)


CREATE_OR_UPDATE_FILES = Tool(
    name="createOrUpdateFiles",
    description="Create or overwrite files in the project. Give each file's whole content.",
    arguments=CreateOrUpdateFilesArgs,
    run=create_or_update_files,
)

READ_FILES = Tool(
    name="readFiles",
    description="Read files from the project. Returns each file's content.",
    arguments=ReadFilesArgs,
    run=read_files,
)
