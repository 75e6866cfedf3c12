"""Bounds checked at their exact edge, with the README's numbers written out (not read from the
constants they check), so a cap moved by one, or grown tenfold, fails here
(tools/mutations_boundaries.py moves each one)."""

from __future__ import annotations

import json

from lambdas.logic.sandboxes import local
from lambdas.logic.steps.get_sandbox_url import listed_paths

# README, Security model, Limits: "output kept to 64 KB head + 64 KB tail per stream in memory".
README_CAPTURE_HEAD_BYTES = 64_000
README_CAPTURE_TAIL_BYTES = 64_000
# README, Bounds, Result: "the result lists at most 500 paths and at most 2,000 characters of them".
README_RESULT_PATHS_JSON_CHARS = 2_000


def test_the_output_capture_keeps_exactly_64_kb_of_head_and_of_tail():
    output = bytes(i % 251 for i in range(300_000))
    capture = local._BoundedCapture()
    for start in range(0, len(output), 4096):  # as a pipe delivers it: in pieces
        capture.add(output[start:start + 4096])

    assert bytes(capture.head) == output[:README_CAPTURE_HEAD_BYTES]
    assert bytes(capture.tail) == output[-README_CAPTURE_TAIL_BYTES:]
    omitted = len(output) - README_CAPTURE_HEAD_BYTES - README_CAPTURE_TAIL_BYTES
    assert f"[... {omitted} bytes omitted ...]" in capture.text()


def test_output_one_byte_over_the_head_is_kept_whole():
    output = b"h" * README_CAPTURE_HEAD_BYTES + b"t"
    capture = local._BoundedCapture()
    capture.add(output)
    assert capture.text() == output.decode() and "omitted" not in capture.text()


def _result_json_chars(paths: list[str]) -> int:
    """What listed_paths counts: the list's brackets and, per path, its JSON and a separator."""
    return 2 + sum(len(json.dumps(p)) + 2 for p in paths)


def test_the_result_lists_paths_up_to_exactly_2000_characters():
    paths = [f"src/file-{i:04d}.txt" for i in range(1000)]  # 19 characters as JSON, 21 with ", "
    per_path = len(json.dumps(paths[0])) + 2
    fitting = (README_RESULT_PATHS_JSON_CHARS - 2) // per_path
    # Lengthen the first path so that `fitting` paths make exactly 2,000 characters.
    paths[0] = "src/" + "x" * (README_RESULT_PATHS_JSON_CHARS - _result_json_chars(paths[:fitting])) + paths[0][4:]
    assert _result_json_chars(paths[:fitting]) == README_RESULT_PATHS_JSON_CHARS

    assert listed_paths(paths) == paths[:fitting]  # at the bound: listed; one more path: over it
    assert listed_paths(paths[:fitting - 1] + ["a" + paths[fitting - 1]]) == paths[:fitting - 1]
