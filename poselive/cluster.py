"""`poselive track --ray`: the tracking of `poselive.batch`, spread over Ray workers.

Each worker is a Ray actor that loads the model once and tracks whole videos through `videos.process_video`,
so the files it writes are the local run's files: same skip rule (a video whose JSONL exists is skipped
unless redo), same atomic writers (temporary file, renamed when the video is finished), same pipeline and
frame order. The driver hands out one video at a time to whichever worker is free, shows one progress bar
over all videos (frames counted by the workers), and collects one VideoSummary per video.

What can go wrong stays per video: a video that cannot be read is reported failed with its reason; a worker
that dies mid-video (crash, lost node) has that video reported failed, its temporary files removed and a
fresh worker started for the rest, so the next run redoes only that video.

Same output as a local run needs the same backend on both sides: with device "onnx" (what "auto" picks on a
machine without a GPU) the JSONL is byte-identical, because ONNX Runtime's CPU kernels give the same bits
for any thread count; torch on the CPU ("cpu") changes in the last float bits with its thread count
(Ray workers get one thread each), and CUDA fp16 ("cuda", what "auto" picks when the cluster has GPUs)
is a different computation altogether.

Ray is an optional extra (`pip install 'poselive[cluster]'`), imported only here and only when used. Input
videos, the output folder and the models folder ($POSELIVE_MODELS, passed on to the workers) must be at the
same paths on every node, e.g. on a shared file system.
"""
from __future__ import annotations

import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from poselive.errors import PoseliveError
from poselive.live import build_pipeline
from poselive.outputs import unfinished_paths
from poselive.videos import VideoSummary, output_paths, overlay, pending_videos, process_video

log = logging.getLogger(__name__)

# Environment the workers need to find what the driver finds (weights, ONNX export cache, decoder choice).
WORKER_ENV = ("POSELIVE_MODELS", "POSELIVE_CACHE", "POSELIVE_PURE_PYTHON")
# The workers send back summaries and frame counts only; a small object store is plenty.
LOCAL_OBJECT_STORE_BYTES = 128 * 2**20
PROGRESS_EVERY_S = 0.5


def import_ray():
    try:
        import ray
    except ImportError:
        raise PoseliveError("--ray needs Ray, which is not installed; pip install 'poselive[cluster]'") from None
    return ray


def start_ray(address: str = "local", num_cpus: int | None = None) -> bool:
    """Start a local Ray ("local": num_cpus defaults to the cores this process may use) or join the cluster
    at `address`. Returns False when Ray was already running in this process (it is then left as it is)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    runtime_env = {"env_vars": {k: os.environ[k] for k in WORKER_ENV if k in os.environ}}
    try:
        if address == "local":
            # Ray starts workers at niceness +15 so that its own daemons stay responsive; here the workers
            # are the whole job, and on a machine shared with other work that priority starves them (10x
            # slower than a local run next to a training job, measured here).
            os.environ.setdefault("RAY_worker_niceness", "0")
            # address="local": a new Ray of our own, even if `ray start` left one (or its address file) here.
            ray.init(address="local", num_cpus=num_cpus or len(os.sched_getaffinity(0)), include_dashboard=False,
                     object_store_memory=LOCAL_OBJECT_STORE_BYTES, logging_level=logging.WARNING,
                     runtime_env=runtime_env)
        else:
            ray.init(address=address, logging_level=logging.WARNING, runtime_env=runtime_env)
    except Exception as e:  # Ray says "cannot connect" with several exception types
        raise PoseliveError(f"cannot start or join Ray at {address} ({_first_line(e)}); check the address "
                            "(`ray status` on the head node prints it) or use --ray without a value") from None
    return True


class FrameCounter:
    """Frames done over all workers (a Ray actor holding one number, for the driver's progress bar)."""

    def __init__(self):
        self.frames = 0

    def add(self, n: int) -> None:
        self.frames += n

    def total(self) -> int:
        return self.frames


class TrackWorker:
    """One Ray actor: the pipeline, loaded once, and videos tracked one after another through it."""

    def __init__(self, device: str, counter):
        self.counter = counter
        self.error = ""
        t0 = time.perf_counter()
        try:
            # Each actor reserves one CPU, so its ONNX Runtime gets one thread: with one thread per core in every
            # worker, n workers would run n x cores threads and thrash.
            self.pipeline = build_pipeline("body", device, threads=1)
        except PoseliveError as e:  # told to the driver by ready(), in words, rather than as a dead actor
            self.error = str(e)
        self.load_s = time.perf_counter() - t0

    def ready(self) -> tuple[str, float]:
        """(error message or "", seconds the model took to load)."""
        return self.error, self.load_s

    def track(self, video: str, out_dir: str, write_video: bool) -> VideoSummary:
        """process_video on one video."""
        path = Path(video)
        if self.error:
            return VideoSummary(path.name, "failed", message=self.error)
        sent, last_send = [0], [time.monotonic()]

        def progress(n: int, total: int | None = None) -> None:
            now = time.monotonic()
            if now - last_send[0] >= PROGRESS_EVERY_S:
                self.counter.add.remote(n - sent[0])
                sent[0], last_send[0] = n, now

        try:
            row = process_video(path, self.pipeline, Path(out_dir), write_video, overlay, progress)
        except Exception as e:  # process_video has removed its temporary files; the other videos go on
            row = VideoSummary(path.name, "failed", message=str(e) if isinstance(e, PoseliveError)
                               else _first_line(e))
        self.counter.add.remote(row.frames - sent[0] if row.frames else 0)
        return row


@dataclass(frozen=True)
class RayRunTimes:
    """Where a Ray run's time went, in seconds. ray_start_s: ray.init (0 if Ray was running); workers_ready_s:
    starting the worker processes and loading the model in each; overhead_s_per_video: mean of (driver's
    round trip for a video - the worker's own time in process_video), i.e. what Ray adds per video."""
    ray_start_s: float
    workers_ready_s: float
    overhead_s_per_video: float
    workers: int


def track_on_ray(videos: list[Path], out_dir: Path, address: str = "local", device: str = "auto",
                 write_video: bool = False, redo: bool = False, workers: int | None = None,
                 show_progress: bool = True) -> list[VideoSummary]:
    """Track `videos` on Ray workers; one VideoSummary per video, in the order given (as track_videos).

    address: "local" starts Ray on this machine, else the address of a running cluster to join. device:
    as for track_videos; "cuda", or "auto" on a cluster with GPUs, gives each worker one GPU (CUDA fp16),
    otherwise each worker takes one CPU core. workers: how many (default: as many as the cluster has GPUs or
    CPU cores free, at most one per video)."""
    return run_on_ray(videos, out_dir, address, device, write_video, redo, workers, show_progress)[0]


def run_on_ray(videos: list[Path], out_dir: Path, address: str = "local", device: str = "auto",
               write_video: bool = False, redo: bool = False, workers: int | None = None,
               show_progress: bool = True) -> tuple[list[VideoSummary], RayRunTimes]:
    """track_on_ray, also returning where the time went (for bench_cluster)."""
    ray = import_ray()
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    pending, rows = pending_videos(videos, out_dir, redo)
    todo: deque[Path] = deque(pending)
    if not todo:
        return [rows[v] for v in videos], RayRunTimes(0.0, 0.0, 0.0, 0)

    t0 = time.perf_counter()
    started = start_ray(address)
    ray_start_s = time.perf_counter() - t0
    try:
        device, per_worker = _worker_resources(ray, device)
        free = ray.available_resources().get("GPU" if "num_gpus" in per_worker else "CPU", 0)
        n_workers = max(1, min(workers or int(free), len(todo)))
        times = _run(ray, todo, rows, out_dir, device, per_worker, n_workers, write_video, show_progress)
    finally:
        if started:
            ray.shutdown()
    return [rows[v] for v in videos], RayRunTimes(ray_start_s, *times, n_workers)


def _worker_resources(ray, device: str) -> tuple[str, dict]:
    gpus = ray.cluster_resources().get("GPU", 0)
    if device == "cuda" or (device == "auto" and gpus > 0):
        if gpus == 0:
            raise PoseliveError("device 'cuda' was asked for, but the Ray cluster has no GPU; "
                                "use --device onnx or cpu")
        return "cuda", {"num_gpus": 1, "num_cpus": 1}
    return device, {"num_cpus": 1}


def _run(ray, todo: deque[Path], rows: dict[Path, VideoSummary], out_dir: Path, device: str, per_worker: dict,
         n_workers: int, write_video: bool, show_progress: bool) -> tuple[float, float]:
    """Hand the videos in `todo` to free workers until none is left, filling `rows`. Returns
    (workers_ready_s, overhead_s_per_video)."""
    from ray.exceptions import RayActorError, RayTaskError
    from tqdm import tqdm

    counter = ray.remote(num_cpus=0)(FrameCounter).remote()
    worker_cls = ray.remote(**per_worker)(TrackWorker)
    t0 = time.perf_counter()
    pool = [worker_cls.remote(device, counter) for _ in range(n_workers)]
    _check_ready(ray, pool)
    workers_ready_s = time.perf_counter() - t0
    log.info("%d Ray workers ready in %.1f s (device %s)", n_workers, workers_ready_s, device)

    running: dict = {}  # ObjectRef -> (worker, video, time handed out)
    overheads: list[float] = []

    def hand_out(worker) -> None:
        v = todo.popleft()
        ref = worker.track.remote(str(v.resolve()), str(out_dir), write_video)
        running[ref] = (worker, v, time.perf_counter())

    bar = tqdm(total=len(todo), desc="videos", unit="video", disable=not show_progress)
    try:
        for w in pool:
            hand_out(w)
        while running:
            done, _ = ray.wait(list(running), num_returns=1, timeout=PROGRESS_EVERY_S)
            for ref in done:
                worker, v, handed_out = running.pop(ref)
                try:
                    rows[v] = ray.get(ref)
                    overheads.append(time.perf_counter() - handed_out - rows[v].seconds)
                except RayActorError:
                    rows[v] = VideoSummary(v.name, "failed", message="the Ray worker died while tracking it; "
                                           "no output was written, run again to redo it")
                    _discard_unfinished(v, out_dir)
                    worker = worker_cls.remote(device, counter) if todo else None
                except RayTaskError as e:  # track() itself failed (it catches what process_video raises)
                    rows[v] = VideoSummary(v.name, "failed", message=_first_line(e.cause or e))
                bar.update(1)
                if worker is not None and todo:
                    hand_out(worker)
            bar.set_postfix(frames=ray.get(counter.total.remote()), refresh=False)
    finally:
        bar.close()
        if running:  # interrupted: stop the workers, then remove what they had begun
            for worker, _, _ in running.values():
                ray.kill(worker)
            ray.wait(list(running), num_returns=len(running), timeout=5)
            for _, v, _ in running.values():
                _discard_unfinished(v, out_dir)
    return workers_ready_s, sum(overheads) / len(overheads) if overheads else 0.0


def _check_ready(ray, pool) -> None:
    from ray.exceptions import RayActorError
    try:
        results = ray.get([w.ready.remote() for w in pool])
    except RayActorError as e:
        raise PoseliveError(f"a Ray worker could not start ({_first_line(e)}); is poselive installed on "
                            "every node?") from None
    errors = {err for err, _ in results if err}
    if errors:
        raise PoseliveError(f"Ray workers cannot load the model: {sorted(errors)[0]}")


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: " + (str(e).strip().splitlines() or [""])[0][:200]


def _discard_unfinished(video: Path, out_dir: Path) -> None:
    """Remove the temporary files a dead worker left for `video` (outputs.py writes .NAME.part for the
    JSONL and .STEM.part.mp4 for the MP4); the final names were never written."""
    for path in output_paths(video, out_dir):
        for tmp in unfinished_paths(path):
            tmp.unlink(missing_ok=True)
