"""The window (`poselive bench --gui`): how soon a source's frames are shown with the models loading, and how
long closing takes while a source plays (the worker thread must stop within CLOSE_BAR_S). Offscreen Qt when no
display is set."""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from poselive.tables import format_table

CLOSE_BAR_S = 2.5


def time_window(source: str = "synthetic", frames: int = 10, timeout_s: float = 180.0) -> dict:
    """Open the window on `source`, wait for `frames` frames drawn by the pipeline, then close it. Returns
    seconds to the first and to the last of those frames, seconds to close, and whether the worker stopped."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt5.QtWidgets import QApplication

    from poselive.gui.window import MainWindow
    from poselive.gui.worker import wait_for_background
    app = QApplication.instance() or QApplication([])
    out = {"source": source, "frames": frames}
    with tempfile.TemporaryDirectory(prefix="poselive-bench-window-") as tmp:
        window = MainWindow(output_dir=Path(tmp), probe=False)
        window.show()
        t0 = time.monotonic()
        window.open_source(source)
        first = None
        while time.monotonic() - t0 < timeout_s:
            app.processEvents()
            last = window.last_frame
            if last is not None and not last.loading:
                first = first if first is not None else time.monotonic() - t0
                if window.frames_shown >= frames:
                    break
            time.sleep(0.005)
        out["first_frame_s"] = first
        out["frames_s"] = time.monotonic() - t0
        out["shown"] = window.frames_shown
        t = time.monotonic()
        window.close()
        out["close_s"] = time.monotonic() - t
        out["stopped"] = bool(window.shutdown())
        wait_for_background(60.0)
    return out


def window_table(source: str = "synthetic") -> str:
    r = time_window(source)
    rows = [["first frame with the models loaded, s", round(r["first_frame_s"] or float("nan"), 2), ""],
            [f"{r['frames']} frames shown, s", round(r["frames_s"], 2), f"({r['shown']} shown)"],
            ["close while playing, s", round(r["close_s"], 2), f"< {CLOSE_BAR_S}"],
            ["worker thread stopped", r["stopped"], "True"]]
    return format_table(["window", "value", "bar"], rows, f"Window on {r['source']} (offscreen Qt without a display)")
