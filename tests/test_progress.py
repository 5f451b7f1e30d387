"""Long work is not silent: `run` on a file draws a bar (frames done of the total, frames per second, time left),
a live source a one-line status (frames, frames per second, dropped frames, latency)."""
from __future__ import annotations

from poselive.cli import main
from poselive.progress import FrameProgress


def test_run_on_a_file_shows_frames_done_of_the_total(shipped_body_models, capsys):
    assert main(["run", "--source", "synthetic:6", "--device", "onnx"]) == 0
    err = capsys.readouterr().err
    assert "6/6" in err and "frame/s" in err and "100%" in err


def test_a_live_source_gets_a_status_line(capsys):
    with FrameProgress(None, "camera 0", live=True) as progress:
        for n in range(1, 13):
            progress.update(n, dropped=3, latency_ms=41.2)
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("camera 0: 12 frames,") and "frame/s" in last
    assert last.endswith("3 dropped, latency 41 ms") and "%" not in last
