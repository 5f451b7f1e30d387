"""`poselive track --ray`: the same files as a local run, a corrupt video reported and passed over, a worker
that dies mid-video leaving nothing behind, and a second run finishing the rest.

One local Ray with 2 CPUs serves the whole module; each Ray run starts its workers and loads the model in
each, so the module takes 1.5-3 minutes on two cores shared with training (marked slow). The dying worker is
killed from outside, with SIGKILL, while it holds its video's unfinished JSONL open. Needs Ray
(`pip install 'poselive[cluster]'`) and the body-lite and body-det-2 weights (in models/, or $POSELIVE_MODELS);
skips saying which is missing.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from poselive import cli
from poselive.batch import track_videos
from poselive.bench.cluster import cut_clips
from poselive.cluster import start_ray, track_on_ray
from poselive.errors import PoseliveError
from poselive.outputs import unfinished_paths
from poselive.videos import find_videos

SHORT_VIDEOS = ["mmpose_demo.mp4", "faceapijs_test_video.mp4"]  # 5 frames each
PEOPLE_VIDEO = "overhead_pedestrians.avi"  # a busy street, cut to 8 frames: people to track, not empty frames
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
def ray_session(shipped_body_models):
    ray = pytest.importorskip("ray", reason="Ray is not installed; pip install 'poselive[cluster]'")
    start_ray("local", num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def video_dir(shared_data, tmp_path_factory) -> Path:
    """Two 5-frame sample videos, an 8-frame clip with people in it, and random bytes named x.mp4."""
    folder = tmp_path_factory.mktemp("videos")
    for name in SHORT_VIDEOS:
        shutil.copyfile(shared_data / "videos" / name, folder / name)
    clip = cut_clips(shared_data / "videos" / PEOPLE_VIDEO, tmp_path_factory.mktemp("clip"), 1, 8)[0]
    shutil.move(clip, folder / "people.mp4")
    (folder / "x.mp4").write_bytes(bytes(range(256)) * 64)  # no video container at all
    return folder


@pytest.fixture(scope="module")
def local_out(shipped_body_models, video_dir, tmp_path_factory) -> Path:
    """The plain local run (no Ray) that the Ray runs must reproduce."""
    out = tmp_path_factory.mktemp("local")
    rows = track_videos(find_videos([str(video_dir)]), out, DEVICE, show_progress=False)
    assert [r.status for r in rows] == ["done", "done", "done", "failed"]
    return out


KILLED = "mmpose_demo.mp4"  # its worker is killed (SIGKILL) while it tracks this video, in the first run


def kill_the_writer_of(path: Path, stop: threading.Event) -> threading.Thread:
    """A thread that kills (SIGKILL) the process holding `path` open as soon as one does, until `stop`: a worker
    that crashes or loses its node mid-video, as the driver sees it. Linux (/proc)."""
    def watch() -> None:
        target = str(path)
        while not stop.is_set():
            for fds in Path("/proc").glob("[0-9]*/fd"):
                try:
                    if any(os.readlink(fd) == target for fd in fds.iterdir()):
                        os.kill(int(fds.parent.name), signal.SIGKILL)
                        return
                except OSError:  # a process that ended, or one that is not ours
                    continue
            time.sleep(0.002)
    thread = threading.Thread(target=watch, name="worker killer", daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def first_run(ray_session, video_dir, tmp_path_factory):
    """A Ray run with 2 workers in which one worker dies mid-video: (summaries by video, files left, out)."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("killing the worker mid-video finds it through /proc (Linux)")
    out = tmp_path_factory.mktemp("ray")
    stop = threading.Event()
    killer = kill_the_writer_of(unfinished_paths(out / f"{Path(KILLED).stem}.jsonl")[0], stop)
    try:
        rows = track_on_ray(find_videos([str(video_dir)]), out, "local", DEVICE, workers=2, show_progress=False)
    finally:
        stop.set()
        killer.join()
    return {r.video: r for r in rows}, sorted(p.name for p in out.iterdir()), out


def same_bytes(a: Path, b: Path) -> bool:
    return a.read_bytes() == b.read_bytes()


@pytest.mark.slow
def test_ray_writes_what_a_local_run_writes(first_run, local_out):
    rows, _, out = first_run
    for name in ("faceapijs_test_video", "people"):
        assert rows[f"{name}.mp4"].status == "done"
        assert same_bytes(out / f"{name}.jsonl", local_out / f"{name}.jsonl"), name


@pytest.mark.slow
def test_the_comparison_covers_tracked_people(first_run, local_out):
    """The byte comparison above means something: the street clip's frames hold tracked people, and Ray's
    people are the local run's, frame by frame."""
    _, _, out = first_run
    local = [json.loads(line)["people"] for line in (local_out / "people.jsonl").read_text().splitlines()]
    on_ray = [json.loads(line)["people"] for line in (out / "people.jsonl").read_text().splitlines()]
    assert sum(len(people) for people in local) > 0, "the local run tracked nobody in the street clip"
    assert on_ray == local


@pytest.mark.slow
def test_corrupt_video_is_reported_and_the_others_go_on(first_run):
    rows, _, _ = first_run
    assert rows["x.mp4"].status == "failed" and "cannot open video" in rows["x.mp4"].message
    assert rows["people.mp4"].status == "done"


@pytest.mark.slow
def test_dead_worker_leaves_no_partial_files(first_run):
    rows, files, _ = first_run
    assert rows[KILLED].status == "failed" and "worker died" in rows[KILLED].message
    assert files == ["faceapijs_test_video.jsonl", "people.jsonl"]  # no .part, nothing under its name


@pytest.mark.slow
def test_second_run_finishes_the_rest(first_run, video_dir, local_out):
    _, _, out = first_run
    rows = track_on_ray(find_videos([str(video_dir)]), out, "local", DEVICE, workers=2, show_progress=False)
    assert {r.video: r.status for r in rows} == {"faceapijs_test_video.mp4": "skipped", KILLED: "done",
                                                 "people.mp4": "skipped", "x.mp4": "failed"}
    assert same_bytes(out / "mmpose_demo.jsonl", local_out / "mmpose_demo.jsonl")
