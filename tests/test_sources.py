"""Frame sources: real videos read to the end, broken inputs handled with a sentence instead of a traceback,
and the latest-frame grabber dropping stale frames for a slow consumer."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from poselive import cli
from poselive.errors import SourceError
from poselive.sources import (ImageSequenceSource, LatestFrameGrabber, LiveCaptureSource, RetryPolicy,
                              SyntheticSource, VideoFileSource, open_source)
from poselive.train.coco_data import data_root

VIDEOS = data_root() / "videos"


def shared_video(name: str) -> Path:
    path = VIDEOS / name
    if not path.is_file():
        pytest.skip(f"shared video {path} not found: set POSELIVE_DATA to the shared data folder")
    return path


# ------------------------------------------------------------------------------------------------- files
@pytest.mark.slow
def test_video_file_gives_every_frame_with_monotonic_indices():
    path = shared_video("vtest.avi")  # 795 frames, 768x576 @ 10 fps (data README)
    with open_source(str(path)) as src:
        assert isinstance(src, VideoFileSource)
        assert src.fps == pytest.approx(10.0)
        frames = [(f.index, f.video_time, f.capture_time, f.image.shape, f.image.dtype) for f in src]
    assert len(frames) == 795
    assert [f[0] for f in frames] == list(range(795))
    assert all(f[3] == (576, 768, 3) and f[4] == np.uint8 for f in frames)
    assert frames[-1][1] == pytest.approx(794 / 10.0)
    captured = [f[2] for f in frames]
    assert all(b >= a for a, b in zip(captured, captured[1:]))
    assert src.status.state == "ended"


def test_second_shared_video_frame_count():
    path = shared_video("dlib_MOT20-05-raw_even_shorter.mp4")  # 127 frames, 826x540 @ 25
    with open_source(path) as src:
        indices = [f.index for f in src]
    assert indices == list(range(127))


def test_missing_file_raises_one_sentence(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(SourceError) as e:
        open_source(str(missing))
    msg = str(e.value)
    assert msg == f"cannot open video {missing}: no such file."
    assert "\n" not in msg
    with pytest.raises(SourceError, match="no such file or folder"):
        open_source(str(tmp_path / "no_folder"))


@pytest.mark.faults
def test_not_a_video_and_empty_folder_raise_source_error(tmp_path):
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"this is not a video" * 50)
    with pytest.raises(SourceError, match="cannot open video .*junk.avi"):
        open_source(junk)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="holds no images"):
        open_source(empty)


@pytest.mark.slow
def test_ffmpegs_own_lines_are_silenced(tmp_path):
    """A video cut before its index and one whose start is cut away: FFmpeg's own lines ("moov atom not
    found", "header damaged") would reach the terminal beside the one line we print. In a fresh process, since
    OpenCV sets FFmpeg's log level once, when its FFmpeg backend starts."""
    import os
    import subprocess
    import sys
    clip = Path(__file__).resolve().parents[1] / "demos" / "vtest_short.mp4"
    data = clip.read_bytes()
    (tmp_path / "no_index.mp4").write_bytes(data[: len(data) // 8])   # mp4v puts the index at the end
    (tmp_path / "no_start.mp4").write_bytes(data[-len(data) // 8:])
    script = ("import sys\nfrom poselive.errors import SourceError\nfrom poselive.sources import open_source\n"
              "for name in ('no_index.mp4', 'no_start.mp4'):\n"
              "    try:\n        list(open_source(name))\n"
              "    except SourceError as e:\n        print(e, file=sys.stderr)\n")

    def printed(**env) -> list[str]:
        """Everything the process wrote (FFmpeg writes to stderr, or to stdout through OpenCV's logger)."""
        environ = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"} | env
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(clip.parents[1]), environ.get("PYTHONPATH")]))
        run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=environ, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=120)
        assert run.returncode == 0, run.stdout
        return run.stdout.splitlines()
    assert any("moov atom not found" in line for line in printed(OPENCV_FFMPEG_LOGLEVEL="16")), \
        "FFmpeg said nothing even at its error level: this test no longer shows anything"
    ours = printed()
    assert len(ours) == 1 and ours[0].startswith("cannot open video no_index.mp4") and "cut short" in ours[0]


@pytest.mark.faults
def test_truncated_video_stops_with_warning_and_keeps_frames_before_the_cut(tmp_path, caplog):
    path = shared_video("vtest.avi")
    cut = tmp_path / "cut.avi"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 10])
    with caplog.at_level(logging.WARNING, logger="poselive.sources"):
        with open_source(cut) as src:
            frames = list(src)
    n = len(frames)
    assert 30 < n < 795 // 5, n  # a tenth of the bytes holds roughly a tenth of the frames
    assert [f.index for f in frames] == list(range(n))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"stopped at frame {n} of the 795" in m and "truncated or corrupt" in m for m in warnings), warnings
    assert src.status.state == "ended" and f"frame {n}" in src.status.message
    # The frames before the cut are the intact file's frames, pixel for pixel; the last one, whose bytes were
    # cut in the middle, comes out partly concealed by the decoder (close to the intact frame, not equal).
    with open_source(path) as full:
        for f in full:
            if f.index < n - 1:
                assert np.array_equal(f.image, frames[f.index].image), f.index
            else:
                assert np.abs(f.image.astype(int) - frames[-1].image).mean() < 10
                break


def test_image_folder_in_natural_order_skips_unreadable_file(tmp_path, caplog):
    src_video = shared_video("mmpose_demo.mp4")
    with open_source(src_video) as video:
        images = [f.image for f in video][:3]
    names = ["img_1.png", "img_2.png", "img_10.png"]
    for name, image in zip(names, images):
        assert cv2.imwrite(str(tmp_path / name), image)
    (tmp_path / "img_3.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    (tmp_path / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING, logger="poselive.sources"):
        with open_source(tmp_path, fps=5) as src:
            assert isinstance(src, ImageSequenceSource)
            frames = list(src)
    # Sorted img_1, img_2, img_3 (broken), img_10: index is the position in that order.
    assert [f.index for f in frames] == [0, 1, 3]
    assert [f.video_time for f in frames] == pytest.approx([0.0, 0.2, 0.6])
    for f, image in zip(frames, images):
        assert np.array_equal(f.image, image)
    assert [p.name for p in src.skipped] == ["img_3.png"]
    assert any("img_3.png" in r.getMessage() for r in caplog.records)


def test_realtime_pacing_holds_the_frame_rate():
    with open_source("synthetic:6", fps=20, realtime=True) as src:
        assert src.is_live
        t0 = time.monotonic()
        frames = list(src)
        elapsed = time.monotonic() - t0
    assert len(frames) == 6
    assert elapsed >= 5 / 20 - 0.02


# ------------------------------------------------------------------------------------------- synthetic
def test_synthetic_source_is_deterministic_and_draws_its_keypoints():
    a = SyntheticSource(frames=5, size=(320, 240), people=2)
    b = open_source("synthetic:5", size=(320, 240))
    fa, fb = list(a), list(b)
    assert len(fa) == len(fb) == 5
    assert all(np.array_equal(x.image, y.image) for x, y in zip(fa, fb))
    assert not np.array_equal(fa[0].image, fa[4].image)  # things move
    kp = a.keypoints(3)
    assert kp.shape == (2, 17, 3)
    # The figure is drawn where its keypoints say: the limb midpoints differ from the empty background.
    bg = a._background
    for pose in kp:
        mid = ((pose[13, :2] + pose[15, :2]) / 2).round().astype(int)  # left knee-ankle midpoint
        assert np.abs(fa[3].image[mid[1], mid[0]].astype(int) - bg[mid[1], mid[0]].astype(int)).sum() > 60


# --------------------------------------------------------------------------------------------- grabber
def test_grabber_drops_stale_frames_for_a_slow_consumer():
    source = SyntheticSource(frames=40, size=(320, 240))
    got = []
    with LatestFrameGrabber(source, drop_stale=True) as grabber:
        for frame in grabber:
            got.append((frame.index, time.monotonic() - frame.capture_time))
            time.sleep(0.03)  # a pipeline much slower than the source
        dropped, captured = grabber.dropped, grabber.captured
    indices = [i for i, _ in got]
    assert captured == 40
    assert dropped > 0
    assert len(indices) + dropped == 40
    assert indices == sorted(set(indices))
    assert indices[-1] == 39  # the newest frame always reaches the consumer
    assert source.status.state in ("ended", "closed")


def test_grabber_without_dropping_delivers_every_frame():
    with LatestFrameGrabber(SyntheticSource(frames=15, size=(160, 120)), drop_stale=False) as grabber:
        indices = []
        for frame in grabber:
            indices.append(frame.index)
            time.sleep(0.005)
    assert indices == list(range(15))
    assert grabber.dropped == 0


def test_grabber_for_a_file_defaults_to_every_frame():
    path = shared_video("mmpose_posetrack18_000001_mpiinew_test.mp4")
    with LatestFrameGrabber(open_source(path)) as grabber:
        assert not grabber.drop_stale
        indices = [f.index for f in grabber]
    assert indices == [0, 1, 2, 3, 4]


def test_grabber_close_stops_a_live_source_quickly():
    source = SyntheticSource(frames=100000, fps=30, size=(160, 120), realtime=True)
    grabber = LatestFrameGrabber(source)
    assert grabber.drop_stale
    assert grabber.get(timeout=2.0) is not None
    t0 = time.monotonic()
    grabber.close()
    assert time.monotonic() - t0 < 1.0
    assert not grabber._thread.is_alive()
    assert source.status.state == "closed"


class FakeCapture:
    """A camera that delivers `frames` frames and then fails, like one that was unplugged."""

    def __init__(self, opened: bool = True, frames: int = 3):
        self.opened, self.left = opened, frames

    def isOpened(self):
        return self.opened

    def read(self):
        if not self.opened or self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.full((8, 8, 3), 7, np.uint8)

    def release(self):
        self.opened = False


def test_lost_camera_is_reopened_with_backoff_and_reported(caplog):
    opens = iter([FakeCapture(frames=3), FakeCapture(opened=False), FakeCapture(opened=False),
                  FakeCapture(frames=2)])
    source = LiveCaptureSource("camera 7", lambda: next(opens, FakeCapture(opened=False)), "cannot open",
                               RetryPolicy(first_delay_s=0.02, max_delay_s=0.05, max_attempts=3))
    states = []
    with caplog.at_level(logging.INFO, logger="poselive.sources"):
        frames = []
        for frame in source:
            frames.append(frame.index)
            states.append(source.status.state)
            if len(frames) == 5:
                break
    assert frames == [0, 1, 2, 3, 4]
    assert source.reconnects == 1
    messages = [r.getMessage() for r in caplog.records]
    # Back-off: 0.02 s, then 0.04 s, then 0.05 s (capped) before the third attempt succeeds.
    assert [m for m in messages if "lost" in m] == ["camera 7 lost, retrying in 0.02 s",
                                                    "camera 7 lost, retrying in 0.04 s",
                                                    "camera 7 lost, retrying in 0.05 s"]
    assert any("camera 7 is back" in m for m in messages)
    assert states[-1] == "ok"
    source.close()


def test_camera_that_never_returns_raises_through_the_grabber():
    opens = iter([FakeCapture(frames=2)])
    source = LiveCaptureSource("camera 5", lambda: next(opens, FakeCapture(opened=False)), "cannot open",
                               RetryPolicy(first_delay_s=0.01, max_delay_s=0.02, max_attempts=2))
    with LatestFrameGrabber(source) as grabber:
        with pytest.raises(SourceError, match="camera 5 was lost and did not come back after 2 attempts"):
            while True:
                grabber.get(timeout=2.0)
        assert grabber.status.state == "failed"


def test_camera_specs():
    with pytest.raises(SourceError, match="unknown camera backend 'bogus'"):
        open_source("0:bogus")
    with pytest.raises(SourceError) as e:
        open_source("63:v4l2")  # no machine has 64 cameras
    assert str(e.value).startswith("cannot open camera 63 with backend v4l2:")
    assert "poselive cameras" in str(e.value)


def test_cameras_command(capsys):
    assert cli.main(["cameras", "--max-index", "1"]) == 0
    out = capsys.readouterr().out
    if not list(Path("/dev").glob("video*")):
        assert out.strip() == "no cameras found"
    else:
        assert out.strip()
