"""Outputs stay byte for byte what tests/golden/ holds: the `track` JSONL of the bundled clip, `predict` json of
five photos and three faces, the `run --task body,face` JSONL and the stream's frame messages.

A change that means to change them (new weights, another default detector or threshold) regenerates them with
`python3 -m tests.make_golden` and says so in its commit; any other difference is a bug.
"""
from __future__ import annotations

import difflib
from pathlib import Path

import pytest

import make_golden as golden


def _same_bytes(made: Path) -> None:
    want = golden.GOLDEN / made.name
    got_bytes, want_bytes = made.read_bytes(), want.read_bytes()
    if got_bytes != want_bytes:
        got_lines, want_lines = got_bytes.decode().splitlines(), want_bytes.decode().splitlines()
        diff = "\n".join(list(difflib.unified_diff(want_lines, got_lines, "golden", "now", n=0, lineterm=""))[:6])
        pytest.fail(f"{made.name} differs from tests/golden/{made.name} "
                    f"({len(got_bytes)} bytes against {len(want_bytes)}):\n{diff[:2000]}")


@pytest.mark.slow
def test_track_jsonl_is_unchanged(tmp_path, shipped_body_models):
    _same_bytes(golden.make_track(tmp_path))


def test_stream_messages_are_unchanged(tmp_path, shipped_body_models):
    _same_bytes(golden.make_stream(tmp_path))


def test_predict_body_json_is_unchanged(tmp_path, shared_data, shipped_body_models):
    _same_bytes(golden.make_predict(tmp_path, shared_data, "body"))


@pytest.mark.slow
def test_predict_face_json_is_unchanged(tmp_path, shared_data):
    _same_bytes(golden.make_predict(tmp_path, shared_data, "face"))


@pytest.mark.slow
def test_run_with_faces_jsonl_is_unchanged(tmp_path, shared_data, shipped_body_models):
    _same_bytes(golden.make_run_faces(tmp_path, shared_data))


@pytest.mark.slow
def test_stream_messages_with_faces_are_unchanged(tmp_path, shared_data, shipped_body_models):
    _same_bytes(golden.make_stream(tmp_path, shared_data / golden.FACE_CLIP, "stream_faces.jsonl", "body,face"))
