"""The live window (`poselive gui`): a real video through the real pipeline on the worker thread, the overlay
painted in the window, heatmaps and smoothing changed live, faces asked for where there are no face weights,
a screenshot and an MP4 recording written, and a close that does not hang. Errors (no weights, a missing file)
show up as a sentence in the window. Runs headless (QT_QPA_PLATFORM=offscreen).

Set POSELIVE_GUI_SHOT=/some/file.png to keep the window screenshot for a look."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported; a value set by the caller wins

import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("pytestqt", reason="pytest-qt is not installed")

from poselive.errors import WeightsError  # noqa: E402
from poselive.gui.view import qimage_to_bgr  # noqa: E402
from poselive.gui.window import (BETA_RANGE, MIN_CUTOFF_RANGE, MainWindow, apply_theme,  # noqa: E402
                                 slider_to_value, value_to_slider)
from poselive.gui.worker import wait_for_background  # noqa: E402
from poselive.sources import LiveCaptureSource, RetryPolicy, SyntheticSource  # noqa: E402
from poselive.weights import DEFAULT_DETECTOR, resolve_weights  # noqa: E402

LOAD_TIMEOUT_MS = 240_000  # loading the models on a busy 2-core machine can take a while


@pytest.fixture
def body_models(tmp_path, monkeypatch) -> Path:
    """A models folder holding only the body weights (so faces are unavailable), set as POSELIVE_MODELS."""
    try:
        weights = [resolve_weights("body-lite"), resolve_weights(DEFAULT_DETECTOR)]
    except WeightsError as e:
        pytest.skip(f"body weights not available ({e}); set POSELIVE_MODELS to a folder with body-lite.pt and "
                    f"{DEFAULT_DETECTOR}.pt")
    folder = tmp_path / "models"
    folder.mkdir()
    for w in weights:
        for shipped in (w.with_suffix(".pt"), w.with_suffix(".onnx")):  # as they ship: the .onnx runs
            if shipped.is_file():
                (folder / shipped.name).symlink_to(shipped.resolve())
    monkeypatch.setenv("POSELIVE_MODELS", str(folder))
    return folder


@pytest.fixture
def vtest(shared_data) -> Path:
    path = shared_data / "videos" / "vtest.avi"
    if not path.is_file():
        pytest.skip(f"shared video {path} not found")
    return path


@pytest.fixture
def make_window(qtbot, qapp, tmp_path):
    apply_theme(qapp)

    def make(**kw) -> MainWindow:
        window = MainWindow(output_dir=tmp_path / "captures", probe=False, **kw)
        qtbot.addWidget(window)  # closed (and its worker stopped) at teardown if a test did not
        window.show()
        qtbot.waitExposed(window)
        return window
    yield make
    # A model load the test closed on keeps running on a daemon thread; let it end inside the test run.
    wait_for_background(120.0)


def close_in_time(window: MainWindow) -> None:
    """Close the window; its worker thread must have stopped (how long closing takes is a benchmark:
    `poselive bench --gui`)."""
    window.close()
    assert window.shutdown(), "the worker thread is still running after close"


def said(window: MainWindow, words: str) -> bool:
    """The window showed a message containing `words`."""
    return any(words in text for _, text in window.messages)


def frames_after(window: MainWindow, n: int):
    start = window.frames_shown
    return lambda: window.frames_shown >= start + n


@pytest.mark.slow
def test_window_runs_the_pipeline_on_a_video_with_heatmaps_screenshot_and_recording(
        make_window, qtbot, body_models, vtest, tmp_path):
    window = make_window()
    window.open_source(str(vtest))
    qtbot.waitUntil(lambda: window.last_frame is not None and not window.last_frame.loading
                    and window.frames_shown >= 3, timeout=LOAD_TIMEOUT_MS)
    assert window.last_frame.source == "video vtest.avi"
    assert "network" in window.last_frame.live.result.times.ms or "detect" in window.last_frame.live.result.times.ms
    assert "FPS" in window.fps_label.text() and "total" in window.stages_label.text()

    # Heatmaps on: the pipeline starts keeping each person's heatmaps. The early weights find people in only
    # some frames, so wait for one that has somebody (and show the overlay on it).
    window.heatmap_check.setChecked(True)
    qtbot.waitUntil(frames_after(window, 2), timeout=60_000)

    def person_with_heatmaps() -> bool:
        r = window.last_frame.live.result
        return bool(r.people) and len(r.heatmaps) == len(r.people)
    try:
        qtbot.waitUntil(person_with_heatmaps, timeout=90_000)
        found_people = True
    except qtbot.TimeoutError:
        found_people = False  # the GUI still works; the model found nobody in 90 s of video

    # A screenshot of the whole window, taken on the frame now shown.
    shown = window.last_frame
    raw = shown.live.result.frame.image
    shot = window.grab()
    shot_path = tmp_path / "window.png"
    assert shot.save(str(shot_path))
    if os.environ.get("POSELIVE_GUI_SHOT"):
        shutil.copy(shot_path, os.environ["POSELIVE_GUI_SHOT"])
    rect = window.video.image_rect()
    top_left = window.video.mapTo(window, rect.topLeft())
    dpr = shot.devicePixelRatio()
    crop = qimage_to_bgr(shot.toImage().copy(round(top_left.x() * dpr), round(top_left.y() * dpr),
                                             round(rect.width() * dpr), round(rect.height() * dpr)))
    assert crop.std() > 20, "the video area of the window is blank"
    expected = cv2.resize(raw, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_AREA)
    diff = np.abs(crop.astype(np.int16) - expected.astype(np.int16)).mean(axis=2)
    h, w = diff.shape
    assert np.median(diff) < 12, "the window does not show the video frame"
    assert diff[: h // 10, : w // 10].mean() > 30, "no HUD panel over the top-left corner of the video"

    # The overlay at the source's resolution: HUD pixels, and skeleton/heatmap pixels where people were found.
    overlay = qimage_to_bgr(shown.overlay)
    assert overlay.shape == raw.shape
    changed = np.abs(overlay.astype(np.int16) - raw.astype(np.int16)).max(axis=2) > 40
    assert changed[:40, :150].mean() > 0.3, "no HUD in the overlay"
    if found_people:
        # The HUD panel darkens the frame; its bounding box is where skeleton pixels cannot be told apart.
        dark = (overlay.astype(np.float32) < 0.5 * raw.astype(np.float32) - 5).all(axis=2)
        ys, xs = np.nonzero(dark)
        hud_w, hud_h = (xs.max() + 1, ys.max() + 1) if len(xs) else (0, 0)
        height, width = raw.shape[:2]
        joints = [(int(round(x)), int(round(y))) for p in shown.live.result.people for x, y, s in p.keypoints
                  if s >= 0.3 and not (x < hud_w and y < hud_h) and 3 <= x < width - 3 and 3 <= y < height - 3]
        if joints:
            assert any(changed[y - 3:y + 4, x - 3:x + 4].any() for x, y in joints), "no skeleton drawn on the joints"

    # The Screenshot button saves the overlay at full resolution.
    png = window.take_screenshot()
    assert png is not None and png.suffix == ".png"
    assert cv2.imread(str(png)).shape == raw.shape

    # Smoothing changed live, and faces asked for with no face weights: a message, bodies keep running.
    window.cutoff_slider.setValue(value_to_slider(0.3, *MIN_CUTOFF_RANGE))
    window.face_check.setChecked(True)
    qtbot.waitUntil(lambda: not window.face_check.isChecked(), timeout=120_000)
    assert said(window, "face landmarks are unavailable")
    assert window.face_note.isVisible() and "face-lite" in window.face_note.text()
    qtbot.waitUntil(frames_after(window, 3), timeout=60_000)
    assert window.body_check.isChecked()
    assert window.last_frame.live.result.times.ms.get("network") is not None \
        or window.last_frame.live.result.times.ms.get("detect") is not None

    # Record a few frames to MP4.
    window.record_button.setChecked(True)
    qtbot.waitUntil(lambda: window.last_frame.recorded >= 5, timeout=60_000)
    window.record_button.setChecked(False)
    captures = tmp_path / "captures"
    qtbot.waitUntil(lambda: said(window, "recorded"), timeout=10_000)  # said once the file is final
    assert not window.record_button.isChecked()
    (video,) = captures.glob("poselive-*.mp4")
    assert not list(captures.glob(".*.part*")), "the recording was left as a partial file"
    cap = cv2.VideoCapture(str(video))
    frames = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        assert image.shape == raw.shape
        frames += 1
    cap.release()
    assert frames >= 5

    close_in_time(window)


def test_missing_weights_are_a_message_and_the_video_still_plays(make_window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("POSELIVE_MODELS", str(tmp_path / "no-models-here"))
    window = make_window()
    window.open_source("synthetic")
    qtbot.waitUntil(lambda: "cannot load the body model" in window.notice.text(), timeout=60_000)
    assert window.notice.palette().color(window.notice.foregroundRole()).red() > 200  # shown as an error
    qtbot.waitUntil(frames_after(window, 3), timeout=30_000)
    assert window.last_frame.source.startswith("synthetic")
    assert not window.last_frame.loading
    assert window.stages_label.text() == "no inference"
    assert qimage_to_bgr(window.last_frame.overlay).std() > 10
    close_in_time(window)


def test_a_source_that_cannot_open_is_a_message_and_closing_while_models_load_is_prompt(
        make_window, qtbot, tmp_path):
    window = make_window()  # starts loading the models (if any) in the background
    window.open_source(str(tmp_path / "no-such-clip.mp4"))
    # The worker sends the failed status and the message as two queued signals: wait for both to be handled
    # (waiting for the first alone and then asserting on the second raced them).
    qtbot.waitUntil(lambda: "cannot open video" in window.source_label.text() and said(window, "cannot open video"),
                    timeout=60_000)
    assert "no such file" in window.source_label.text()
    assert window.video.image is None
    close_in_time(window)


def test_recording_without_a_source_says_so(make_window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("POSELIVE_MODELS", str(tmp_path / "no-models-here"))
    window = make_window()
    window.record_button.setChecked(True)
    qtbot.waitUntil(lambda: not window.record_button.isChecked(), timeout=10_000)
    assert said(window, "nothing to record: open a source first")
    assert window.take_screenshot() is None
    close_in_time(window)


class UnpluggedCamera:
    """A capture that delivers `frames` real-looking frames and then fails, like a camera pulled out."""

    def __init__(self, frames: int, opened: bool = True):
        self.left, self.opened = frames, opened
        self.image = SyntheticSource(frames=1).render(0)

    def isOpened(self):
        return self.opened

    def read(self):
        if not self.opened or self.left <= 0:
            return False, None
        self.left -= 1
        time.sleep(0.03)
        return True, self.image.copy()

    def release(self):
        self.opened = False


def unplugged_camera(retry: RetryPolicy):
    def factory(spec: str) -> LiveCaptureSource:
        opens = iter([UnpluggedCamera(frames=10)])
        return LiveCaptureSource(f"camera {spec}", lambda: next(opens, UnpluggedCamera(0, opened=False)),
                                 f"cannot open camera {spec}", retry)
    return factory


def test_a_lost_camera_shows_the_retry_status_and_closing_while_retrying_is_prompt(
        make_window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("POSELIVE_MODELS", str(tmp_path / "no-models-here"))
    window = make_window(source_factory=unplugged_camera(RetryPolicy(first_delay_s=2.0, max_delay_s=2.0)))
    window.open_source("9")
    qtbot.waitUntil(lambda: window.frames_shown >= 3, timeout=30_000)
    qtbot.waitUntil(lambda: window.source_label.text() == "camera 9 lost, retrying in 2 s", timeout=30_000)
    assert window.video.image is not None  # the last picture stays while the camera is away
    close_in_time(window)  # the 2 s back-off wait is cut short


def test_a_camera_that_never_comes_back_is_a_message(make_window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("POSELIVE_MODELS", str(tmp_path / "no-models-here"))
    window = make_window(source_factory=unplugged_camera(RetryPolicy(first_delay_s=0.05, max_delay_s=0.1,
                                                                     max_attempts=2)))
    window.open_source("9")
    # The status line and the message come by separate signals from the worker: wait for both, in either order.
    qtbot.waitUntil(lambda: "did not come back" in window.source_label.text() and said(window, "camera 9 was lost"),
                    timeout=30_000)
    assert window.video.image is None and not window.stop_button.isEnabled()
    close_in_time(window)


def test_smoothing_sliders_cover_the_defaults_on_a_log_scale():
    for value, rng in ((1.0, MIN_CUTOFF_RANGE), (0.02, BETA_RANGE)):
        assert slider_to_value(value_to_slider(value, *rng), *rng) == pytest.approx(value, rel=0.08)
    assert slider_to_value(0, *MIN_CUTOFF_RANGE) == pytest.approx(MIN_CUTOFF_RANGE[0])
    assert slider_to_value(100, *BETA_RANGE) == pytest.approx(BETA_RANGE[1])
