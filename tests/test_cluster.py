"""`poselive track --ray`: the same files as a local run, a corrupt video reported and passed over, a worker
that dies mid-video leaving nothing behind, and a second run finishing the rest.

One local Ray with 2 workers' worth of cores serves the whole module (starting Ray takes 10-20 s on two busy
cores). Needs Ray (`pip install 'poselive[cluster]'`) and the body-lite and body-det weights (shipped in
models/, or $POSELIVE_MODELS); skips saying which is missing.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from poselive import cli
from poselive.batch import find_videos, track_videos
from poselive.cluster import _cut_clips, start_ray, track_on_ray
from poselive.errors import PoseliveError, WeightsError
from poselive.weights import resolve_weights

SHORT_VIDEOS = ["mmpose_demo.mp4", "faceapijs_test_video.mp4"]  # 5 frames each
PEOPLE_VIDEO = "overhead_pedestrians.avi"  # people the current weights find; cut to a short clip
# "onnx" on both sides: ONNX Runtime gives the same bits for any thread count (see poselive/cluster.py).
DEVICE = "onnx"


def test_without_ray_the_error_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    (tmp_path / "a.mp4").write_bytes(b"")
    with pytest.raises(PoseliveError, match=r"pip install 'poselive\[cluster\]'"):
        track_on_ray([tmp_path / "a.mp4"], tmp_path / "out")
    assert cli.main(["track", str(tmp_path), "--out", str(tmp_path / "out"), "--ray"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "poselive[cluster]" in err


@pytest.fixture(scope="module")
def ray_session():
    pytest.importorskip("ray", reason="Ray is not installed; pip install 'poselive[cluster]'")
    for name in ("body-lite", "body-det"):
        try:
            resolve_weights(name)
        except WeightsError as e:
            pytest.skip(f"{e} (or set POSELIVE_MODELS to a folder holding {name}.pt)")
    import ray
    start_ray("local", num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def video_dir(shared_data, tmp_path_factory) -> Path:
    """Two 5-frame sample videos, an 8-frame clip with people in it, and random bytes named x.mp4."""
    folder = tmp_path_factory.mktemp("videos")
    for name in SHORT_VIDEOS:
        shutil.copyfile(shared_data / "videos" / name, folder / name)
    clip = _cut_clips(shared_data / "videos" / PEOPLE_VIDEO, tmp_path_factory.mktemp("clip"), 1, 8)[0]
    shutil.move(clip, folder / "people.mp4")
    (folder / "x.mp4").write_bytes(bytes(range(256)) * 64)
    return folder


@pytest.fixture(scope="module")
def local_out(ray_session, video_dir, tmp_path_factory) -> Path:
    """The plain local run (no Ray) that the Ray runs must reproduce."""
    out = tmp_path_factory.mktemp("local")
    rows = track_videos(find_videos([str(video_dir)]), out, DEVICE, show_progress=False)
    assert [r.status for r in rows] == ["done", "done", "done", "failed"]
    return out


def good_names(video_dir: Path) -> list[str]:
    return sorted(p.stem for p in video_dir.iterdir() if p.name != "x.mp4")


def test_ray_run_writes_what_a_local_run_writes(ray_session, video_dir, local_out, tmp_path):
    rows = track_on_ray(find_videos([str(video_dir)]), tmp_path, "local", DEVICE, workers=2, show_progress=False)
    status = {r.video: r for r in rows}
    assert status["x.mp4"].status == "failed" and "cannot open video" in status["x.mp4"].message
    for name in good_names(video_dir):
        assert status[f"{name}.mp4"].status == "done"
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (local_out / f"{name}.jsonl").read_bytes(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{n}.jsonl" for n in good_names(video_dir)]
    # The comparison means something only if someone was tracked.
    assert '"track_id":' in (local_out / "people.jsonl").read_text()


def test_dead_worker_leaves_nothing_and_the_next_run_finishes(ray_session, video_dir, local_out, tmp_path):
    videos = find_videos([str(video_dir)])
    rows = track_on_ray(videos, tmp_path, "local", DEVICE, workers=2, show_progress=False,
                        exit_worker_after=("people.mp4", 3))
    status = {r.video: r.status for r in rows}
    assert status == {"faceapijs_test_video.mp4": "done", "mmpose_demo.mp4": "done", "people.mp4": "failed",
                      "x.mp4": "failed"}
    assert not list(tmp_path.glob("*people*")) and not list(tmp_path.glob(".*")), "partial files left"

    rows = track_on_ray(videos, tmp_path, "local", DEVICE, workers=2, show_progress=False)
    assert {r.video: r.status for r in rows} == {"faceapijs_test_video.mp4": "skipped",
                                                 "mmpose_demo.mp4": "skipped", "people.mp4": "done",
                                                 "x.mp4": "failed"}
    for name in good_names(video_dir):
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (local_out / f"{name}.jsonl").read_bytes(), name
