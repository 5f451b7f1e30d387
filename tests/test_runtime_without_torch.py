"""The runtime needs no torch: with torch and onnx made unimportable, `run`, `track`, `predict` and `serve`
work from the shipped .onnx files alone (their metadata carries the config and schema), and what does need
torch (train, export-onnx, bench, --device cpu) says in one line what to install. In a fresh process, so that
nothing this test session imported stands in for what the commands import."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "demos" / "vtest_short.mp4"

# Runs each command line (one per argument, a JSON list) in one process where `import torch` and `import onnx`
# fail as they do where neither is installed; prints one JSON line of exit statuses.
WITHOUT_TORCH = """
import json, sys
sys.modules["torch"] = None
sys.modules["onnx"] = None
from poselive.cli import main
codes = [main(json.loads(a)) for a in sys.argv[1:]]
print(json.dumps(codes))
"""


def without_torch(tmp_path: Path, *commands: list[str]) -> tuple[list[int], str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               POSELIVE_CACHE=str(tmp_path / "cache"))
    run = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *map(json.dumps, commands)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1]), run.stderr


@pytest.mark.parametrize("name", ["body-lite", "body-lite-160", "body-det", "body-det-2", "body-det-3", "face-lite"])
def test_each_shipped_onnx_file_carries_its_config_schema_and_name(name):
    from poselive.backends import META_MODEL, META_SCHEMA, OnnxRuntimeBackend
    from poselive.schemas import schema_by_name
    from poselive.weights import models_dir
    path = models_dir() / f"{name}.onnx"
    if not path.is_file():
        pytest.skip(f"{path} is not shipped here")
    backend = OnnxRuntimeBackend(path)
    assert backend.config is not None and backend.config.name == name
    assert backend.metadata[META_MODEL] == name
    schema = json.loads(backend.metadata[META_SCHEMA])
    assert tuple(schema["keypoints"]) == schema_by_name(backend.config.schema).keypoints


@pytest.mark.slow
def test_run_track_predict_and_serve_need_no_torch(shipped_body_models, tmp_path):
    clip = tmp_path / "clips" / "five.mp4"
    clip.parent.mkdir()
    cap = cv2.VideoCapture(str(CLIP))
    writer = None
    for _ in range(5):
        ok, image = cap.read()
        assert ok
        if writer is None:
            writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, image.shape[1::-1])
        writer.write(image)
    writer.release()
    cv2.imwrite(str(tmp_path / "street.jpg"), image)
    codes, err = without_torch(
        tmp_path,
        ["run", "--source", str(clip), "--json", "run.jsonl", "--out", "run.mp4"],
        ["track", str(clip.parent), "--out", "tracks"],
        ["predict", "street.jpg", "--out", "people.json"],
        ["serve", "--source", str(clip), "--udp", "127.0.0.1:9", "--max-frames", "3"])
    assert codes == [0, 0, 0, 0], err
    assert len((tmp_path / "run.jsonl").read_text().splitlines()) == 5 and (tmp_path / "run.mp4").is_file()
    assert len((tmp_path / "tracks" / "five.jsonl").read_text().splitlines()) == 5
    people = json.loads((tmp_path / "people.json").read_text())
    assert people and all(len(p["keypoints"]) == 51 and p["image_id"] == 1 for p in people)
    assert not (tmp_path / "cache").exists(), "an ONNX export was made: the shipped .onnx files went unused"


@pytest.mark.slow
def test_what_needs_torch_says_what_to_install(tmp_path):
    codes, err = without_torch(tmp_path, ["train", "body-lite", "--steps", "1"],
                               ["export-onnx", str(ROOT / "models" / "body-lite.pt"), "x.onnx"],
                               ["bench"], ["run", "--source", "synthetic:2", "--device", "cpu"])
    assert codes == [2, 2, 2, 2]
    lines = err.strip().splitlines()
    assert len(lines) == 4, err
    for line, what in zip(lines, ["`poselive train`", "`poselive export-onnx`", "`poselive bench`",
                                  "device 'cpu'"]):
        assert line.startswith(f"poselive: error: {what} needs torch, which is not installed")
        assert "pip install 'poselive[train]'" in line and "download.pytorch.org/whl/cpu" in line
