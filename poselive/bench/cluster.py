"""Batch tracking locally against Ray (`poselive bench --cluster`), on clips cut from one video."""
from __future__ import annotations

import os
import time
from pathlib import Path

from poselive.errors import PoseliveError


def bench_cluster(source: str | os.PathLike | None = None, clips: int = 6, frames: int = 20, workers: int = 2,
                  device: str = "onnx") -> str:
    """Videos/hour tracked locally (track_videos) against Ray with 1 and `workers` workers, on `clips` clips
    of `frames` frames cut from `source` (default: vtest.avi in the shared data); returns a table.

    Ray's cost is shown as start-up (ray.init; workers started and model loaded in each) and per video
    (driver round trip minus the worker's own time). Whatever else runs on the machine (e.g. training)
    slows every row; the rows run one after another, so compare them, not the absolute numbers."""
    import tempfile

    from poselive.batch import track_videos
    from poselive.cluster import import_ray, run_on_ray, start_ray
    from poselive.tables import format_table
    from poselive.videos import summary_table

    ray = import_ray()
    with tempfile.TemporaryDirectory(prefix="poselive-bench-cluster-") as tmp:
        source = Path(source) if source else _default_bench_video()
        videos = cut_clips(source, Path(tmp) / "clips", clips, frames)
        fps = _video_fps(source)
        n_frames = clips * frames
        table = []

        def add(name, wall_s, tracked, ready_s=0.0, overhead_s=0.0, n_workers=1):
            if any(r.status != "done" for r in tracked):
                raise PoseliveError(f"bench clips were not all tracked ({name}):\n{summary_table(tracked)}")
            steady = len(videos) / (wall_s - ready_s) * 3600
            table.append([name, n_workers, round(wall_s, 1), round(ready_s, 1), round(overhead_s * 1000),
                          round(n_frames / wall_s, 2), round(len(videos) / wall_s * 3600),
                          round(steady / n_workers)])

        t0 = time.perf_counter()
        tracked = track_videos(videos, Path(tmp) / "local", device, show_progress=False)
        add("local (track_videos)", time.perf_counter() - t0, tracked)

        t0 = time.perf_counter()
        started = start_ray("local", num_cpus=workers)
        ray_start_s = time.perf_counter() - t0
        try:
            for n in sorted({1, workers}):
                t0 = time.perf_counter()
                rows, times = run_on_ray(videos, Path(tmp) / f"ray{n}", "local", device, workers=n,
                                         show_progress=False)
                add(f"ray, {n} worker{'s' * (n > 1)}", time.perf_counter() - t0, rows, times.workers_ready_s,
                    times.overhead_s_per_video, n)
        finally:
            if started:
                ray.shutdown()
    load = os.getloadavg()[0]
    note = (f"{clips} clips x {frames} frames of {frames / fps:.1f} s, device {device}, "
            f"{len(os.sched_getaffinity(0))} cores, load average {load:.1f} at the end: other processes (e.g. "
            f"training) share the cores and slow every row. Starting Ray took {ray_start_s:.1f} s, once per run, "
            "not in any row. wall: the whole track call; ready: starting the workers and loading the model in "
            "each; ms/video added: Ray's round trip per video beyond the worker's own time; videos/h/worker: "
            "per worker once started, which is what a long batch sees.")
    return format_table(["run", "workers", "wall s", "ready s", "ms/video added", "frames/s", "videos/h",
                         "videos/h/worker"], table, "Batch tracking: local vs Ray") + "\n" + note


def _default_bench_video() -> Path:
    root = Path(os.environ.get("POSELIVE_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
    path = root / "videos" / "vtest.avi"
    if not path.is_file():
        raise PoseliveError(f"no bench video at {path}; pass one, or set POSELIVE_DATA to the shared data folder")
    return path


def _video_fps(path: Path) -> float:
    import cv2
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return fps if fps and fps > 0 else 25.0


def cut_clips(source: Path, folder: Path, clips: int, frames: int) -> list[Path]:
    """`clips` MP4s of `frames` consecutive frames each, taken one after another from `source`."""
    import cv2
    if clips < 1 or frames < 1:
        raise PoseliveError(f"cannot cut {clips} clips of {frames} frames; ask for at least one of each")
    folder.mkdir(parents=True, exist_ok=True)
    fps = _video_fps(source)
    cap = cv2.VideoCapture(str(source))
    out = []
    try:
        for c in range(clips):
            path = folder / f"clip{c:03d}.mp4"
            writer = None
            for _ in range(frames):
                ok, image = cap.read()
                if not ok:
                    raise PoseliveError(f"{source} has fewer than {clips * frames} frames; use fewer clips or frames")
                if writer is None:
                    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                             (image.shape[1], image.shape[0]))
                writer.write(image)
            writer.release()
            out.append(path)
    finally:
        cap.release()
    return out
