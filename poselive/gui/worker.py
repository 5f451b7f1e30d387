"""The live loop of the window, off the UI thread.

`LiveWorker` is a QObject moved to a QThread. It owns the source, its LatestFrameGrabber and the Pipeline, and
steps the loop from a QTimer on its own thread: one frame per step, so settings sent by the window (queued
signals into the worker's slots) apply between frames without locks. Slow things that cannot be interrupted
(loading the models, opening a camera or a stream) run on short-lived daemon threads whose Future the loop
polls, so the worker answers a stop within one frame's processing and the app never waits for them to close.

The window gets each result through a one-slot hand-over: the worker replaces the slot's GuiFrame and emits
`frame_ready` only when the slot was empty; the window takes the newest with `take_frame()`. A UI that falls
behind therefore skips stale pictures instead of queueing them.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

from PyQt5.QtCore import QObject, QTimer, pyqtSignal, pyqtSlot
from PyQt5.QtGui import QImage

from poselive.errors import PoseliveError
from poselive.filters import SmootherConfig
from poselive.gui.view import bgr_to_qimage
from poselive.live import LiveResult, Overlay, build_pipeline, live_result, source_status
from poselive.pipeline import FrameResult, Pipeline
from poselive.records import Frame, StageTimes
from poselive.sources import FrameSource, LatestFrameGrabber, SourceStatus, open_source
from poselive.timing import FpsMeter

log = logging.getLogger(__name__)

# The synthetic scene is finite; half an hour at 30 fps keeps it going while someone watches.
SYNTHETIC_FRAMES = 30 * 60 * 30
GET_TIMEOUT_S = 0.02      # how long one step waits for a frame before handing control back to Qt's event loop
IDLE_POLL_MS = 30         # step interval while only a model load or a source open is pending


@dataclass(frozen=True, eq=False)  # holds an image: compare by identity
class GuiFrame:
    """One processed frame for the window.

    overlay: what to show, the frame (its own size) with skeletons, faces, heatmaps and HUD as asked;
    live: the LiveResult (people, faces, per-stage ms, fps, capture-to-result latency, dropped frames, source
    status line); source: the source's name ("video vtest.avi"); recorded: frames written to the recording in
    progress (0 when not recording); inferred: the pipeline ran on this frame (False while the models load,
    after they failed, or with bodies and faces both off); loading: the models are still loading."""
    overlay: QImage
    live: LiveResult
    source: str
    recorded: int = 0
    inferred: bool = True
    loading: bool = False


_background: set[threading.Thread] = set()
_background_lock = threading.Lock()


def run_in_background(fn: Callable, *args, name: str) -> Future:
    """Call fn(*args) on a daemon thread; its result or exception lands in the returned Future. Daemon, so a
    model load or a camera open that takes long never keeps the window from closing (see wait_for_background
    for the exit of the process)."""
    future: Future = Future()

    def run() -> None:
        try:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as e:  # noqa: BLE001 (handed to the worker, which reports it)
                    future.set_exception(e)
        finally:
            with _background_lock:
                _background.discard(thread)

    thread = threading.Thread(target=run, name=name, daemon=True)
    with _background_lock:
        _background.add(thread)
    thread.start()
    return future


def wait_for_background(timeout_s: float) -> bool:
    """Wait up to timeout_s for the threads of run_in_background still running (e.g. a model load whose
    window has closed); True when none is left. The process should not exit while one is inside native code
    (ONNX Runtime, torch), which can abort it."""
    deadline = time.monotonic() + timeout_s
    with _background_lock:
        threads = list(_background)
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t in threads)


def open_live(spec: str) -> FrameSource:
    """The window's way to open a source: as open_source, but files, folders and the synthetic scene play in
    real time (dropping what the pipeline cannot keep up with, as a camera would), and the synthetic scene
    runs for half an hour."""
    return open_source(spec, realtime=True, frames=SYNTHETIC_FRAMES)


def _close_when_done(future: Future) -> None:
    """A source opened for nobody (the request was superseded or the app is closing) is closed on arrival."""
    def close(f: Future) -> None:
        if not f.cancelled() and f.exception() is None:
            f.result().close()
    future.add_done_callback(close)


@dataclass
class _Pending:
    future: Future
    what: str           # for messages: the source spec, or the tasks being loaded
    face: bool = False  # a model load that includes the face stage


class LiveWorker(QObject):
    """Source -> grabber -> pipeline -> overlay, on the thread this object is moved to.

    Signals: frame_ready, source_opened, source_status, tasks_changed, face_unavailable, recording_changed,
    message (see their comments). Slots (call them through queued signals from the UI thread): open_source,
    close_source, set_tasks, set_heatmaps, set_hud, set_smoothing, start_recording, stop_recording, start
    (begin loading the models; connect QThread.started to it) and shutdown. Thread-safe plain methods:
    request_stop, take_frame.

    device: as for build_pipeline; body, face, heatmaps, smoothing, smoother, hud: the initial settings;
    source_factory: how a spec becomes a FrameSource (default: open_source, with files and the synthetic scene
    paced in real time); called on a background thread."""

    frame_ready = pyqtSignal()               # a GuiFrame waits in take_frame()
    source_opened = pyqtSignal(str)          # the source's name
    source_status = pyqtSignal(str, str)     # state ("opening", "ok", "lost", "ended", "failed", "closed"), message
    tasks_changed = pyqtSignal(bool, bool)   # body, face: what the pipeline runs now (face may have failed)
    face_unavailable = pyqtSignal(str)       # why faces were asked for but cannot run
    recording_changed = pyqtSignal(bool, str)  # recording now?, the file
    message = pyqtSignal(str, str)           # level ("info", "warning", "error"), one sentence for people

    def __init__(self, device: str = "auto", *, body: bool = True, face: bool = False, heatmaps: bool = False,
                 smoothing: bool = True, smoother: SmootherConfig = SmootherConfig(), hud: bool = True,
                 source_factory: Callable[[str], FrameSource] | None = None):
        super().__init__()
        self._device = device
        self._source_factory = source_factory or open_live
        self._want_body = body
        self._want_face = face
        self._heatmaps = heatmaps
        self._hud = hud
        self._smoothing = smoothing
        self._smoother = smoother
        self._pipe: Pipeline | None = None
        self._build: _Pending | None = None
        self._opening: _Pending | None = None
        self._grab: LatestFrameGrabber | None = None
        self._source_name = ""
        self._last_status: tuple[str, str] | None = None
        self._fps = FpsMeter()
        self._last_fps = 0.0
        self._recorder = None
        self._record_path = ""
        self._recorded = 0
        self._stop = threading.Event()
        self._slot: GuiFrame | None = None
        self._slot_lock = threading.Lock()
        self.frames_processed = 0
        self.frames_skipped_by_ui = 0
        self._timer = QTimer(self)  # a child, so it moves to the worker's thread with this object
        self._timer.timeout.connect(self._step)

    # ------------------------------------------------------------------------------ thread-safe entry points
    def request_stop(self) -> None:
        """From any thread: stop at the next frame boundary (a capture wait is cut short). Follow with the
        `shutdown` slot to release everything and end the thread."""
        self._stop.set()
        grab = self._grab
        if grab is not None:
            grab.source.stop()

    def take_frame(self) -> GuiFrame | None:
        """From any thread: the newest GuiFrame not yet taken, or None."""
        with self._slot_lock:
            frame, self._slot = self._slot, None
        return frame

    # ----------------------------------------------------------------------------------------------- slots
    @pyqtSlot()
    def start(self) -> None:
        """Begin loading the models (the window is usable meanwhile; frames show without landmarks)."""
        if self._pipe is None and self._build is None:
            self._request_build()

    @pyqtSlot(str)
    def open_source(self, spec: str) -> None:
        """Close the current source and open `spec` (see poselive.sources.open_source). Files and the synthetic
        scene play in real time, dropping frames the pipeline cannot keep up with, as a camera would."""
        if self._stop.is_set():
            return
        self._close_grabber()
        if self._opening is not None:
            _close_when_done(self._opening.future)
        self._opening = _Pending(run_in_background(self._source_factory, spec, name=f"poselive open {spec}"), spec)
        self._emit_status("opening", f"opening {spec}…")
        self._schedule()

    @pyqtSlot()
    def close_source(self) -> None:
        if self._opening is not None:
            _close_when_done(self._opening.future)
            self._opening = None
        if self._grab is not None:
            name = self._source_name
            self._close_grabber()
            self._emit_status("closed", f"{name} stopped")
        self._schedule()

    @pyqtSlot(bool, bool)
    def set_tasks(self, body: bool, face: bool) -> None:
        """Show bodies and/or faces. Turning faces on loads the face model in the background while the current
        pipeline keeps running; if it cannot be loaded the window is told (message + tasks_changed)."""
        self._want_body = body
        if self._pipe is not None:
            self._pipe.bodies = body
        if face and not self._want_face:
            self._want_face = True
            self._request_build()
        elif not face and self._want_face:
            self._want_face = False
            if self._build is not None and self._build.face:
                self._build = None  # its thread finishes on its own; the result is not wanted any more
                if self._pipe is None:
                    self._request_build()
            if self._pipe is not None:
                self._pipe.face_stage = None
        self.tasks_changed.emit(self._want_body, self._want_face)

    @pyqtSlot(bool)
    def set_heatmaps(self, on: bool) -> None:
        self._heatmaps = on
        if self._pipe is not None:
            self._configure(self._pipe)

    @pyqtSlot(bool)
    def set_hud(self, on: bool) -> None:
        self._hud = on

    @pyqtSlot(bool, float, float)
    def set_smoothing(self, enabled: bool, min_cutoff: float, beta: float) -> None:
        """One Euro on keypoints: min_cutoff in Hz (> 0; lower = steadier at rest), beta in 1/px (>= 0; higher
        = less lag in fast moves). Applies from the next frame."""
        self._smoothing = enabled
        self._smoother = dataclasses.replace(self._smoother, min_cutoff=max(float(min_cutoff), 1e-3),
                                             beta=max(float(beta), 0.0))
        if self._pipe is not None:
            self._configure(self._pipe)

    @pyqtSlot(str)
    def start_recording(self, path: str) -> None:
        """Write every shown overlay to the MP4 `path` until stop_recording (or the source ends)."""
        from poselive.outputs import VideoSink
        self.stop_recording()
        if self._grab is None:
            self.message.emit("warning", "nothing to record: open a source first.")
            self.recording_changed.emit(False, "")
            return
        src = self._grab.source
        fps = src.fps or 25.0
        if src.is_live and self._last_fps > 0:
            # Stale frames are dropped, so the video holds what was shown at the loop's pace, not the source's.
            fps = min(fps, self._last_fps)
        self._recorder = VideoSink(path, round(fps, 2))
        self._record_path = path
        self._recorded = 0
        self.recording_changed.emit(True, path)

    @pyqtSlot()
    def stop_recording(self) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return
        path, n = self._record_path, self._recorded
        try:
            recorder.close()
        except Exception as e:  # noqa: BLE001 (a full disk or a vanished folder: say so, keep running)
            log.exception("closing the recording %s failed", path)
            self.message.emit("error", f"could not finish the recording {path}: {e}")
        else:
            if n:
                self.message.emit("info", f"recorded {n} frames to {path}")
            else:
                self.message.emit("warning", "no frames were recorded, so no file was written.")
        self._recorded = 0
        self.recording_changed.emit(False, path)

    @pyqtSlot()
    def shutdown(self) -> None:
        """Release the recording, the source and the models, then end this object's thread."""
        self._stop.set()
        self._timer.stop()
        self.stop_recording()
        self._close_grabber()
        if self._opening is not None:
            _close_when_done(self._opening.future)
            self._opening = None
        self._build = None
        self._pipe = None
        self.thread().quit()

    # ------------------------------------------------------------------------------------------ internals
    def _schedule(self) -> None:
        """Step continuously while a source runs, poll slowly while only background work is pending, else
        sleep until a slot gives work."""
        if self._stop.is_set():
            self._timer.stop()
            return
        if self._grab is not None:
            interval = 0
        elif self._build is not None or self._opening is not None:
            interval = IDLE_POLL_MS
        else:
            self._timer.stop()
            return
        if self._timer.interval() != interval:
            self._timer.setInterval(interval)
        if not self._timer.isActive():
            self._timer.start()

    def _request_build(self) -> None:
        face = self._want_face
        tasks = "body,face" if face else "body"
        self._build = _Pending(run_in_background(self._load_pipeline, tasks, name="poselive model load"),
                               tasks, face)
        self.message.emit("info", f"loading the {'body and face models' if face else 'body model'}…")
        self._schedule()

    def _load_pipeline(self, tasks: str) -> Pipeline:
        """On a loader thread: build the pipeline and load the detector now rather than on the first frame."""
        pipe = build_pipeline(tasks, self._device)
        pipe.estimator.detector  # noqa: B018 (loaded lazily on first access)
        return pipe

    def _configure(self, pipe: Pipeline) -> None:
        """Apply the window's settings to a pipeline (between frames, on this thread)."""
        pipe.bodies = self._want_body
        if not self._want_face:
            pipe.face_stage = None
        pipe.reconfigure(dataclasses.replace(pipe.config, smoothing=self._smoothing, smoother=self._smoother,
                                             keep_heatmaps=self._heatmaps))

    def _poll_background(self) -> None:
        build = self._build
        if build is not None and build.future.done():
            self._build = None
            self._finish_build(build)
        opening = self._opening
        if opening is not None and opening.future.done():
            self._opening = None
            self._finish_open(opening)

    def _finish_build(self, build: _Pending) -> None:
        try:
            pipe = build.future.result()
        except (PoseliveError, ImportError) as e:
            if build.face:
                # Faces are optional: keep (or get) bodies running and say why faces are off.
                self._want_face = False
                self.face_unavailable.emit(str(e))
                self.message.emit("warning", f"face landmarks are unavailable: {e}")
                if self._pipe is None:
                    self._request_build()
            else:
                self.message.emit("error", f"cannot load the body model: {e}")
            self.tasks_changed.emit(self._want_body, self._want_face)
            return
        except Exception as e:  # noqa: BLE001 (a bug or a broken install: logged in full, shown in one line)
            log.exception("loading the models failed")
            self.message.emit("error", f"cannot load the models: {type(e).__name__}: {e}")
            return
        self._configure(pipe)
        self._pipe = pipe
        self.message.emit("info", f"{build.what.replace(',', ' and ')} model{'s' if build.face else ''} ready")
        self.tasks_changed.emit(self._want_body, self._want_face)

    def _finish_open(self, opening: _Pending) -> None:
        try:
            src = opening.future.result()
        except PoseliveError as e:
            self._emit_status("failed", str(e))
            self.message.emit("error", str(e))
            return
        except Exception as e:  # noqa: BLE001
            log.exception("opening %s failed", opening.what)
            msg = f"cannot open {opening.what}: {type(e).__name__}: {e}"
            self._emit_status("failed", msg)
            self.message.emit("error", msg)
            return
        if self._pipe is not None:
            self._pipe.reset()  # new scene: new track ids, no smoothing from the old one
        self._fps = FpsMeter()
        self._last_fps = 0.0
        self._source_name = src.name
        self._grab = LatestFrameGrabber(src)
        self._last_status = None
        self.source_opened.emit(src.name)
        self._emit_status("ok", src.name)

    def _close_grabber(self) -> None:
        self.stop_recording()
        grab, self._grab = self._grab, None
        if grab is not None:
            grab.close()

    def _emit_status(self, state: str, message: str) -> None:
        if (state, message) != self._last_status:
            self._last_status = (state, message)
            self.source_status.emit(state, message)

    def _report(self, status: SourceStatus) -> None:
        if status.state == "ok":
            self._emit_status("ok", self._source_name)
        else:
            self._emit_status(status.state, status.message)

    @pyqtSlot()
    def _step(self) -> None:
        if self._stop.is_set():
            self._timer.stop()
            return
        self._poll_background()
        grab = self._grab
        if grab is None:
            self._schedule()
            return
        try:
            frame = grab.get(timeout=GET_TIMEOUT_S)
        except Exception as e:  # noqa: BLE001 (raised on the capture thread: a lost camera that never came back)
            if not isinstance(e, PoseliveError):
                log.exception("%s failed", self._source_name)
            msg = str(e) if isinstance(e, PoseliveError) else f"{self._source_name} failed: {type(e).__name__}: {e}"
            self._close_grabber()
            self._emit_status("failed", msg)
            self.message.emit("error", msg)
            self._schedule()
            return
        if frame is None:
            if self._stop.is_set():
                return
            if grab.finished:
                status = grab.status
                self._close_grabber()
                self._emit_status("ended", status.message or f"{self._source_name} ended")
                self._schedule()
            else:
                self._report(grab.status)
            return
        self._report(grab.status)
        self._process(frame, grab)

    def _process(self, frame: Frame, grab: LatestFrameGrabber) -> None:
        pipe = self._pipe
        run = pipe is not None and (pipe.bodies or pipe.face_stage is not None)
        result = None
        if run:
            try:
                result = pipe(frame)
            except Exception as e:  # noqa: BLE001 (keep the video going; the log has the traceback)
                log.exception("the pipeline failed on frame %d", frame.index)
                self._pipe = None
                self.message.emit("error", f"the pipeline failed on frame {frame.index} ({type(e).__name__}: {e}); "
                                           f"showing the video without landmarks.")
        if result is None:
            result = FrameResult(frame, [], [], StageTimes({}))
        line = source_status(grab)
        loading = self._pipe is None and self._build is not None
        if loading and not line:
            line = "loading the model…"
        live = live_result(result, grab, self._fps, Overlay(self._heatmaps, self._hud), line)
        self._last_fps = live.fps
        if self._recorder is not None:
            try:
                self._recorder.on_result(live)
                self._recorded += 1
            except Exception as e:  # noqa: BLE001 (no encoder, disk full: stop recording, keep showing)
                log.exception("writing %s failed", self._record_path)
                self.message.emit("error", f"recording stopped: {e}")
                self.stop_recording()
        self.frames_processed += 1
        gui_frame = GuiFrame(bgr_to_qimage(live.image), live, self._source_name, self._recorded,
                             inferred=run and self._pipe is not None, loading=loading)
        with self._slot_lock:
            was_empty = self._slot is None
            if not was_empty:
                self.frames_skipped_by_ui += 1
            self._slot = gui_frame
        if was_empty:
            self.frame_ready.emit()
