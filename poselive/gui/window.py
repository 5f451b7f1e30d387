"""The main window of `poselive gui` (also `poselive run --show` and `poselive demo --show`).

A video view on the left; on the right, the source picker (cameras found by probe_cameras, "Open file…", the
synthetic scene), what to draw (bodies, faces, heatmaps, HUD), the One Euro smoothing sliders, and recording
and screenshots; a status bar with messages, source state, FPS, latency, per-stage times and dropped frames.

Everything that can take time (opening a source, loading models, inference, writing the MP4) happens in the
LiveWorker on its own QThread; the window only sends it settings through queued signals and paints the
QImage it gets back.
"""
from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path

from PyQt5.QtCore import QStandardPaths, Qt, QThread, QTimer, pyqtSignal
from PyQt5.QtGui import QColor, QKeySequence, QPalette
from PyQt5.QtWidgets import (QApplication, QCheckBox, QComboBox, QFileDialog, QGridLayout, QGroupBox,
                             QHBoxLayout, QLabel, QMainWindow, QPushButton, QShortcut, QSlider,
                             QVBoxLayout, QWidget)

from poselive.errors import PoseliveError
from poselive.filters import SmootherConfig
from poselive.gui.view import ElidedLabel, VideoView
from poselive.gui.worker import GuiFrame, LiveWorker, run_in_background, wait_for_background
from poselive.render import STAGE_ABBREV as _STAGE_ABBREV

log = logging.getLogger(__name__)

# One Euro slider ranges, logarithmic: min_cutoff in Hz, beta in 1/px (SmootherConfig's defaults sit inside).
MIN_CUTOFF_RANGE = (0.05, 20.0)
BETA_RANGE = (0.0005, 0.5)
SLIDER_STEPS = 100
STOP_TIMEOUT_S = 2.0
MESSAGE_HISTORY = 100
NOTICE_MS = {"info": 8000, "warning": 20000, "error": 20000}  # how long a message stays in the status bar
_LEVEL_RANK = {"info": 0, "warning": 1, "error": 2}
VIDEO_FILTER = ("Videos and images (*.mp4 *.avi *.mov *.mkv *.webm *.m4v *.mpg *.mpeg *.wmv *.jpg *.jpeg "
                "*.png *.bmp *.tif *.tiff *.webp);;All files (*)")
_WARNING = QColor(255, 170, 60)
_ERROR = QColor(255, 100, 100)

# Worker threads still finishing a frame when their window closed: kept referenced until they end, because
# destroying a running QThread aborts the process.
_lingering: list[tuple[QThread, LiveWorker]] = []


def slider_to_value(position: int, lo: float, hi: float) -> float:
    """Slider position 0..SLIDER_STEPS -> value on a log scale from lo to hi."""
    return lo * (hi / lo) ** (position / SLIDER_STEPS)


def value_to_slider(value: float, lo: float, hi: float) -> int:
    value = min(max(value, lo), hi)
    return round(SLIDER_STEPS * math.log(value / lo) / math.log(hi / lo))


def default_output_dir() -> Path:
    """Where recordings and screenshots go unless told otherwise: <the system's videos folder>/poselive."""
    movies = QStandardPaths.writableLocation(QStandardPaths.MoviesLocation)
    return Path(movies or Path.home()) / "poselive"


def _unique_path(folder: Path, stem: str, suffix: str) -> Path:
    path = folder / f"{stem}{suffix}"
    n = 2
    while path.exists():
        path = folder / f"{stem}-{n}{suffix}"
        n += 1
    return path


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


class MainWindow(QMainWindow):
    """The live window. device: as for build_pipeline; body, face, heatmaps, smoothing: initial settings;
    output_dir: where recordings and screenshots go (default default_output_dir()); probe: look for cameras
    at start (in the background); source_factory: passed to LiveWorker (how a spec becomes a source)."""

    # To the worker (queued: it lives on its own thread).
    open_requested = pyqtSignal(str)
    close_requested = pyqtSignal()
    tasks_requested = pyqtSignal(bool, bool)
    heatmaps_requested = pyqtSignal(bool)
    hud_requested = pyqtSignal(bool)
    smoothing_requested = pyqtSignal(bool, float, float)
    record_requested = pyqtSignal(str)
    record_stop_requested = pyqtSignal()
    shutdown_requested = pyqtSignal()
    # From the camera probe's thread.
    _cameras_found = pyqtSignal(object)

    def __init__(self, device: str = "auto", *, body: bool = True, face: bool = False, heatmaps: bool = False,
                 smoothing: bool = True, output_dir: str | Path | None = None, probe: bool = True,
                 source_factory=None):
        super().__init__()
        self.setWindowTitle("poselive")
        self.resize(1280, 780)
        self.output_dir = Path(output_dir) if output_dir else default_output_dir()
        self.last_frame: GuiFrame | None = None
        self.frames_shown = 0
        self._last_dir = str(Path.cwd())
        self._closed = False
        # Bound methods only, never lambdas, as slots: PyQt disconnects a bound method when its object is
        # deleted, while a lambda can still fire into a half-destroyed window.
        self._notice_timer = QTimer(self)
        self._notice_timer.setSingleShot(True)
        self._notice_timer.timeout.connect(self._clear_notice)
        self._notice_rank = 0
        self.messages: list[tuple[str, str]] = []  # (level, text), oldest first

        defaults = SmootherConfig()
        self._build_ui(body, face, heatmaps, smoothing, defaults)
        self._build_status_bar()
        self._build_shortcuts()

        self._thread = QThread()
        self._thread.setObjectName("poselive live worker")
        self._worker = LiveWorker(device, body=body, face=face, heatmaps=heatmaps, smoothing=smoothing,
                                  smoother=defaults, source_factory=source_factory)
        self._worker.moveToThread(self._thread)
        self._connect_worker()
        self._thread.start()

        self._cameras_found.connect(self._on_cameras_found)
        if probe:
            self.find_cameras()

    # --------------------------------------------------------------------------------------------- layout
    def _build_ui(self, body: bool, face: bool, heatmaps: bool, smoothing: bool, defaults: SmootherConfig) -> None:
        self.video = VideoView()

        # Source
        self.source_combo = QComboBox()
        self.source_combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.source_combo.setMinimumContentsLength(14)
        self.source_combo.addItem("Synthetic scene", "synthetic")
        self.source_combo.setCurrentIndex(-1)
        self.source_combo.setPlaceholderText("Choose a source…")
        self.source_combo.activated.connect(self._on_source_picked)
        self.open_file_button = QPushButton("Open file…")
        self.open_file_button.clicked.connect(self.open_file_dialog)
        self.cameras_button = QPushButton("Find cameras")
        self.cameras_button.clicked.connect(self.find_cameras)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.close_source)
        source_box = QGroupBox("Source")
        grid = QGridLayout(source_box)
        grid.addWidget(self.source_combo, 0, 0, 1, 2)
        grid.addWidget(self.open_file_button, 1, 0)
        grid.addWidget(self.cameras_button, 1, 1)
        grid.addWidget(self.stop_button, 2, 0, 1, 2)

        # What to draw
        self.body_check = QCheckBox("Body skeletons")
        self.face_check = QCheckBox("Face landmarks")
        self.heatmap_check = QCheckBox("Network heatmaps")
        self.hud_check = QCheckBox("Timing overlay (HUD)")
        self.body_check.setChecked(body)
        self.face_check.setChecked(face)
        self.heatmap_check.setChecked(heatmaps)
        self.hud_check.setChecked(True)
        self.body_check.toggled.connect(self._on_tasks_toggled)
        self.face_check.toggled.connect(self._on_tasks_toggled)
        self.face_note = ElidedLabel()
        self.face_note.set_colour(_WARNING)
        self.face_note.setContentsMargins(22, 0, 0, 0)
        self.face_note.hide()
        show_box = QGroupBox("Show")
        col = QVBoxLayout(show_box)
        for w in (self.body_check, self.face_check, self.face_note, self.heatmap_check, self.hud_check):
            col.addWidget(w)

        # Smoothing
        self.smooth_check = QCheckBox("One Euro filter")
        self.smooth_check.setChecked(smoothing)
        self.cutoff_slider = QSlider(Qt.Horizontal)
        self.beta_slider = QSlider(Qt.Horizontal)
        for s, value, rng in ((self.cutoff_slider, defaults.min_cutoff, MIN_CUTOFF_RANGE),
                              (self.beta_slider, defaults.beta, BETA_RANGE)):
            s.setRange(0, SLIDER_STEPS)
            s.setValue(value_to_slider(value, *rng))
        self.cutoff_slider.setToolTip("Cutoff at rest: lower is steadier when still, but lags more")
        self.beta_slider.setToolTip("Speed coefficient: higher follows fast moves with less lag, but jitters more")
        self.cutoff_label = QLabel()
        self.beta_label = QLabel()
        self.smooth_reset_button = QPushButton("Defaults")
        self.smooth_reset_button.clicked.connect(self._reset_smoothing)
        smooth_box = QGroupBox("Smoothing")
        grid = QGridLayout(smooth_box)
        grid.addWidget(self.smooth_check, 0, 0, 1, 2)
        grid.addWidget(self.cutoff_label, 1, 0, 1, 2)
        grid.addWidget(self.cutoff_slider, 2, 0, 1, 2)
        grid.addWidget(self.beta_label, 3, 0, 1, 2)
        grid.addWidget(self.beta_slider, 4, 0, 1, 2)
        grid.addWidget(self.smooth_reset_button, 5, 1)

        # Capture
        self.record_button = QPushButton("● Record")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip("Record the overlay to an MP4 in the folder below")
        self.record_button.setStyleSheet("QPushButton:checked { background: #a02828; color: white; }")
        self.record_button.toggled.connect(self._on_record_toggled)
        self.screenshot_button = QPushButton("Screenshot")
        self.screenshot_button.clicked.connect(self._on_screenshot_clicked)
        self.folder_button = QPushButton("Folder…")
        self.folder_button.clicked.connect(self.choose_output_dir)
        self.folder_label = ElidedLabel()
        self.folder_label.setStyleSheet("color: #9a9a9a;")
        self._show_output_dir()
        capture_box = QGroupBox("Capture")
        grid = QGridLayout(capture_box)
        grid.addWidget(self.record_button, 0, 0)
        grid.addWidget(self.screenshot_button, 0, 1)
        grid.addWidget(self.folder_label, 1, 0, 1, 2)
        grid.addWidget(self.folder_button, 2, 1)

        panel = QWidget()
        panel.setFixedWidth(290)
        side = QVBoxLayout(panel)
        side.setContentsMargins(0, 0, 0, 0)
        for box in (source_box, show_box, smooth_box, capture_box):
            side.addWidget(box)
        side.addStretch(1)
        hint = QLabel("Ctrl+O open · Ctrl+R record · Ctrl+S screenshot · H heatmaps")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #808080;")
        side.addWidget(hint)

        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(8, 8, 8, 4)
        row.addWidget(self.video, 1)
        row.addWidget(panel)
        self.setCentralWidget(central)

        self.heatmap_check.toggled.connect(self.heatmaps_requested)
        self.hud_check.toggled.connect(self.hud_requested)
        self.smooth_check.toggled.connect(self._on_smoothing_changed)
        self.cutoff_slider.valueChanged.connect(self._on_smoothing_changed)
        self.beta_slider.valueChanged.connect(self._on_smoothing_changed)
        self._update_smoothing_labels()

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.notice = ElidedLabel()
        self.source_label = ElidedLabel("no source")
        self.source_label.setMinimumWidth(160)
        self.fps_label = QLabel("– FPS")
        self.latency_label = QLabel("latency –")
        self.stages_label = QLabel("")
        self.dropped_label = QLabel("dropped –")
        self.rec_label = QLabel("")
        self.rec_label.setStyleSheet("color: #ff5050; font-weight: bold;")
        metrics = self.fontMetrics()
        # Fixed room for numbers that change every frame, so the status bar does not jitter.
        for label, widest in ((self.fps_label, "00.0 FPS"), (self.latency_label, "latency 0000 ms"),
                              (self.stages_label, "det 000 · net 000 · dec 0.0 · draw 00 · total 000 ms"),
                              (self.dropped_label, "dropped 00000")):
            label.setMinimumWidth(metrics.horizontalAdvance(widest) + 8)
        bar.addWidget(self.notice, 3)
        bar.addPermanentWidget(self.source_label, 2)
        for w in (self.fps_label, self.latency_label, self.stages_label, self.dropped_label, self.rec_label):
            bar.addPermanentWidget(w)

    def _build_shortcuts(self) -> None:
        for keys, slot in ((QKeySequence.Open, self.open_file_dialog),
                           ("Ctrl+R", self.record_button.toggle),
                           ("Ctrl+S", self._on_screenshot_clicked),
                           ("H", self.heatmap_check.toggle),
                           (QKeySequence.Quit, self.close)):
            QShortcut(QKeySequence(keys), self, activated=slot)

    def _connect_worker(self) -> None:
        w = self._worker
        self._thread.started.connect(w.start)
        self.open_requested.connect(w.open_source)
        self.close_requested.connect(w.close_source)
        self.tasks_requested.connect(w.set_tasks)
        self.heatmaps_requested.connect(w.set_heatmaps)
        self.hud_requested.connect(w.set_hud)
        self.smoothing_requested.connect(w.set_smoothing)
        self.record_requested.connect(w.start_recording)
        self.record_stop_requested.connect(w.stop_recording)
        self.shutdown_requested.connect(w.shutdown)
        w.frame_ready.connect(self._on_frame_ready)
        w.source_opened.connect(self._on_source_opened)
        w.source_status.connect(self._on_source_status)
        w.tasks_changed.connect(self._on_tasks_changed)
        w.face_unavailable.connect(self._on_face_unavailable)
        w.recording_changed.connect(self._on_recording_changed)
        w.message.connect(self._on_message)

    # -------------------------------------------------------------------------------------- public actions
    @property
    def worker(self) -> LiveWorker:
        return self._worker

    def open_source(self, spec: str) -> None:
        """Start a source by what a person would type: "0", "clip.mp4", "photos/", "rtsp://…", "synthetic"."""
        spec = str(spec).strip()
        if not spec:
            return
        index = self.source_combo.findData(spec)
        if index < 0:
            path = Path(spec)
            label = path.name if path.exists() else spec
            self.source_combo.addItem(label, spec)
            index = self.source_combo.count() - 1
            self.source_combo.setItemData(index, spec, Qt.ToolTipRole)
        self.source_combo.setCurrentIndex(index)
        self.open_requested.emit(spec)

    def open_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a video or image", self._last_dir, VIDEO_FILTER)
        if path:
            self._last_dir = str(Path(path).parent)
            self.open_source(path)

    def close_source(self) -> None:
        self.close_requested.emit()

    def find_cameras(self) -> None:
        """Probe cameras on a background thread (opening devices can take seconds); the list fills in later."""
        self.cameras_button.setEnabled(False)
        self.cameras_button.setText("Looking…")

        def found(future) -> None:  # on the probe's thread: the signal queues it to the UI thread
            try:
                cameras = future.result()
            except Exception as e:  # noqa: BLE001 (a camera driver failing must not take the window down)
                log.warning("looking for cameras failed: %s", e)
                cameras = []
            try:
                self._cameras_found.emit(cameras)
            except RuntimeError:  # the window was deleted meanwhile
                pass

        from poselive.sources import probe_cameras
        run_in_background(probe_cameras, name="poselive camera probe").add_done_callback(found)

    def take_screenshot(self, path: str | Path | None = None) -> Path | None:
        """Save the overlay now shown, at the source's resolution, as PNG; returns the file (None if there was
        nothing to save or it could not be written, with a message in the status bar)."""
        image = self.video.image
        if image is None:
            self._on_message("warning", "nothing to save yet: open a source first.")
            return None
        if path is None:
            path = _unique_path(self.output_dir, time.strftime("poselive-%Y%m%d-%H%M%S"), ".png")
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self._on_message("error", f"cannot save the screenshot in {path.parent}: {e.strerror}")
            return None
        if not image.save(str(path), "PNG"):
            self._on_message("error", f"cannot write the screenshot {path}")
            return None
        self._on_message("info", f"screenshot saved to {path}")
        return path

    def choose_output_dir(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for recordings and screenshots", str(self.output_dir))
        if folder:
            self.output_dir = Path(folder)
            self._show_output_dir()

    def shutdown(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Stop the worker (finishing any recording) and its thread; True when it ended within timeout_s.
        Called when the window closes."""
        if self._closed:
            return not self._thread.isRunning()
        self._closed = True
        self._worker.request_stop()
        self.shutdown_requested.emit()
        stopped = self._thread.wait(int(timeout_s * 1000))
        if not stopped:
            log.warning("the live worker did not stop within %g s; it ends after its current frame", timeout_s)
            _lingering.append((self._thread, self._worker))
        return stopped

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.shutdown()
        super().closeEvent(event)

    # ---------------------------------------------------------------------------------------- UI handlers
    def _on_source_picked(self, index: int) -> None:
        spec = self.source_combo.itemData(index)
        if spec:
            self.open_requested.emit(spec)

    def _on_tasks_toggled(self) -> None:
        self.tasks_requested.emit(self.body_check.isChecked(), self.face_check.isChecked())

    def _smoothing_values(self) -> tuple[float, float]:
        return (slider_to_value(self.cutoff_slider.value(), *MIN_CUTOFF_RANGE),
                slider_to_value(self.beta_slider.value(), *BETA_RANGE))

    def _update_smoothing_labels(self) -> None:
        min_cutoff, beta = self._smoothing_values()
        self.cutoff_label.setText(f"Min cutoff: {min_cutoff:.2f} Hz")
        self.beta_label.setText(f"Beta (speed): {beta:.4f} /px")
        on = self.smooth_check.isChecked()
        for w in (self.cutoff_label, self.cutoff_slider, self.beta_label, self.beta_slider):
            w.setEnabled(on)

    def _on_smoothing_changed(self) -> None:
        self._update_smoothing_labels()
        self.smoothing_requested.emit(self.smooth_check.isChecked(), *self._smoothing_values())

    def _reset_smoothing(self) -> None:
        d = SmootherConfig()
        self.cutoff_slider.setValue(value_to_slider(d.min_cutoff, *MIN_CUTOFF_RANGE))
        self.beta_slider.setValue(value_to_slider(d.beta, *BETA_RANGE))

    def _on_record_toggled(self, on: bool) -> None:
        if on:
            stem = time.strftime("poselive-%Y%m%d-%H%M%S")
            self.record_requested.emit(str(_unique_path(self.output_dir, stem, ".mp4")))
        else:
            self.record_stop_requested.emit()

    def _show_output_dir(self) -> None:
        self.folder_label.setText(f"Saving to {self.output_dir}")

    def _on_screenshot_clicked(self) -> None:
        self.take_screenshot()

    def _clear_notice(self) -> None:
        self._notice("")
        self._notice_rank = 0

    def _notice(self, text: str, colour: QColor | None = None) -> None:
        self.notice.setText(text)
        self.notice.set_colour(colour)

    # ------------------------------------------------------------------------------------ worker handlers
    def _on_frame_ready(self) -> None:
        frame = self._worker.take_frame()
        if frame is None:
            return
        self.last_frame = frame
        self.frames_shown += 1
        self.video.set_image(frame.overlay)
        live = frame.live
        self.fps_label.setText(f"{live.fps:.1f} FPS")
        self.latency_label.setText(f"latency {live.latency_ms:.0f} ms")
        self.dropped_label.setText(f"dropped {live.dropped}")
        times = live.result.times
        if frame.inferred:
            shown = [f"{_STAGE_ABBREV.get(name, name)} {_ms(ms)}" for name, ms in times.ms.items() if ms >= 0.5]
            self.stages_label.setText(" · ".join(shown + [f"total {_ms(times.total_ms)} ms"]))
            self.stages_label.setToolTip("Per-stage time of the last frame (ms):\n" + "\n".join(
                f"{name}: {ms:.2f}" for name, ms in times.ms.items()))
        else:
            self.stages_label.setText("loading model…" if frame.loading else "no inference")
        if frame.recorded:
            self.rec_label.setText(f"● REC {frame.recorded}")

    def _on_source_opened(self, name: str) -> None:
        self.setWindowTitle(f"poselive — {name}")
        self.stop_button.setEnabled(True)

    def _on_source_status(self, state: str, message: str) -> None:
        colour = {"lost": _WARNING, "failed": _ERROR, "ok": None}.get(state)
        text = {"opening": message, "ended": "ended", "closed": "stopped"}.get(state, message)
        self.source_label.setText(text)
        self.source_label.set_colour(colour)
        if state in ("ended", "closed", "failed"):
            self.stop_button.setEnabled(False)
        if state == "failed":
            self.video.clear(message)
            self.setWindowTitle("poselive")
        elif state == "ended":
            self._on_message("info", message)
        elif state == "closed":
            self.video.clear()
            self.setWindowTitle("poselive")

    def _on_tasks_changed(self, body: bool, face: bool) -> None:
        if face:
            self.face_note.hide()
            self.face_check.setToolTip("")
        for check, on in ((self.body_check, body), (self.face_check, face)):
            if check.isChecked() != on:
                check.blockSignals(True)
                check.setChecked(on)
                check.blockSignals(False)

    def _on_face_unavailable(self, reason: str) -> None:
        self.face_note.setText(f"unavailable: {reason}")
        self.face_note.show()
        self.face_check.setToolTip(f"Face landmarks are unavailable: {reason}")

    def _on_recording_changed(self, on: bool, path: str) -> None:
        if self.record_button.isChecked() != on:
            self.record_button.blockSignals(True)
            self.record_button.setChecked(on)
            self.record_button.blockSignals(False)
        self.record_button.setText("■ Stop" if on else "● Record")
        self.rec_label.setText("● REC" if on else "")

    def _on_message(self, level: str, text: str) -> None:
        """Log it, keep it in `messages` (the notice's tooltip lists the recent ones) and show it in the status
        bar, unless a more serious message is still being shown there."""
        getattr(log, {"error": "error", "warning": "warning"}.get(level, "info"))("%s", text)
        self.messages.append((level, text))
        del self.messages[:-MESSAGE_HISTORY]
        rank = _LEVEL_RANK.get(level, 0)
        if rank >= self._notice_rank or not self._notice_timer.isActive():
            self._notice(text, {"error": _ERROR, "warning": _WARNING}.get(level))
            self._notice_rank = rank
            self._notice_timer.start(NOTICE_MS[level] if level in NOTICE_MS else NOTICE_MS["info"])
        self.notice.setToolTip("\n".join(t for _, t in self.messages[-10:]))

    def _on_cameras_found(self, cameras: list) -> None:
        self.cameras_button.setEnabled(True)
        self.cameras_button.setText("Find cameras")
        current = self.source_combo.currentData()
        for i in reversed(range(self.source_combo.count())):
            if str(self.source_combo.itemData(i)).isdigit():
                self.source_combo.removeItem(i)
        for n, cam in enumerate(cameras):
            self.source_combo.insertItem(n, f"Camera {cam.index} ({cam.width}x{cam.height})", str(cam.index))
        if current is not None:
            self.source_combo.setCurrentIndex(self.source_combo.findData(current))
        else:
            self.source_combo.setCurrentIndex(-1)
        if not cameras:
            self._on_message("info", "no cameras found; open a video file or choose the synthetic scene.")


def apply_theme(app: QApplication) -> None:
    """Fusion with a dark palette: video reads best on a dark surround."""
    app.setStyle("Fusion")
    p = QPalette()
    base, window, text = QColor(30, 30, 33), QColor(42, 42, 46), QColor(225, 225, 228)
    for role, colour in ((QPalette.Window, window), (QPalette.WindowText, text), (QPalette.Base, base),
                         (QPalette.AlternateBase, window), (QPalette.ToolTipBase, window),
                         (QPalette.ToolTipText, text), (QPalette.Text, text), (QPalette.Button, QColor(55, 55, 60)),
                         (QPalette.ButtonText, text), (QPalette.BrightText, QColor(255, 80, 80)),
                         (QPalette.Highlight, QColor(64, 140, 220)), (QPalette.HighlightedText, QColor(255, 255, 255)),
                         (QPalette.Link, QColor(90, 160, 240))):
        p.setColor(role, colour)
    for role in (QPalette.WindowText, QPalette.Text, QPalette.ButtonText):
        p.setColor(QPalette.Disabled, role, QColor(120, 120, 125))
    app.setPalette(p)


def gui_command(args) -> int:
    """`poselive gui [--source S] [--device D]`; also `run --show` (which adds --task, --heatmaps, --no-smooth)
    and `demo --show`. Returns the application's exit code."""
    from poselive.gui.platform_check import check_qt_platform
    tasks = {t.strip() for t in (getattr(args, "task", None) or "body").split(",") if t.strip()}
    unknown = tasks - {"body", "face"}
    if unknown:
        raise PoseliveError(f"unknown task {', '.join(sorted(unknown))}; use body, face or body,face")
    if QApplication.instance() is None:
        check_qt_platform()  # Qt would abort the process instead of raising
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "poselive"])
    app.setApplicationName("poselive")
    apply_theme(app)
    window = MainWindow(getattr(args, "device", "auto") or "auto", body="body" in tasks, face="face" in tasks,
                        heatmaps=bool(getattr(args, "heatmaps", False)),
                        smoothing=not getattr(args, "no_smooth", False))
    window.show()
    source = getattr(args, "source", None)
    if source not in (None, ""):
        window.open_source(str(source))
    code = app.exec_()
    window.shutdown()
    for thread, _ in _lingering:
        thread.wait()  # a frame in progress; destroying a running QThread would abort
    if not wait_for_background(0.2):
        log.info("finishing a model load or source open before exiting…")
        wait_for_background(30.0)
    return int(code)
