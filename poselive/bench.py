"""`poselive bench`: time every stage on every backend available here and print plain-text tables.

Per backend, per crop: preprocess (affine crop of one person box out of a 640x480 frame + normalise), network,
decode (heatmaps -> keypoints in image px), and their total, as median and 90th percentile over warm runs;
then crops/s at batch 1 and 8; the model's size; and the compiled decoder against its numpy reference.
Timings use time.perf_counter; torch gets one thread per core, ONNX Runtime as many intra-op threads.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from poselive import codec
from poselive.checkpoint import load_model
from poselive.errors import PoseliveError
from poselive.nets.configs import CONFIGS, NetConfig
from poselive.nets.hourglass import StackedHourglass, count_params
from poselive.tables import format_table
from poselive.keypoint_model import KeypointModel
from poselive.timing import StageTimer
from poselive.weights import models_dir

FRAME_WH = (640, 480)
# Person boxes (x, y, w, h) in frame px for the batch-8 runs; the first is the batch-1 box.
BOXES_XYWH = [(250, 60, 140, 380), (40, 120, 110, 300), (470, 90, 120, 350), (180, 200, 90, 260),
              (330, 20, 150, 440), (10, 10, 200, 460), (560, 150, 70, 200), (120, 300, 160, 170)]
DECODE_SHAPES = [(1, 17, 64, 48), (8, 17, 64, 48)]


# ------------------------------------------------------------------------------------------------ helpers
@dataclass(frozen=True)
class ModelStats:
    """params: parameter count; gflops: forward FLOPs at input_wh, batch 1, in 1e9 (a multiply-add is 2)."""
    params: int
    gflops: float
    input_wh: tuple[int, int]


def model_stats(cfg: NetConfig, input_wh: tuple[int, int] | None = None) -> ModelStats:
    """Parameter count and GFLOPs of a config at `input_wh` (W, H; default its own input size).

    Built and run on the meta device: shapes only, no memory or compute, so body-full costs no more than
    body-lite."""
    from torch.utils.flop_counter import FlopCounterMode

    w, h = input_wh or cfg.input_wh
    with torch.device("meta"):
        model = StackedHourglass(cfg).eval()
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, h, w))
    return ModelStats(count_params(model), counter.get_total_flops() / 1e9, (w, h))


def percentiles_ms(seconds: list[float]) -> tuple[float, float]:
    """(median, p90) in ms."""
    a = np.asarray(seconds) * 1e3
    return float(np.median(a)), float(np.percentile(a, 90))


def time_calls(fn: Callable[[], object], repeats: int, warmup: int) -> list[float]:
    """Seconds per call of `fn`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def resolve_model(spec: str) -> tuple[StackedHourglass, str]:
    """A config name (shipped weights <models dir>/<name>.pt, random if not there yet) or a weights file.
    Returns the model and a phrase saying where its weights came from."""
    if spec in CONFIGS:
        path = models_dir() / f"{spec}.pt"
        if path.is_file():
            return load_model(path), f"weights {path}"
        torch.manual_seed(0)
        return StackedHourglass(CONFIGS[spec]).eval(), f"RANDOM weights ({path} does not exist yet)"
    if Path(spec).suffix == ".pt" or Path(spec).exists():
        return load_model(spec), f"weights {spec}"
    raise PoseliveError(f"unknown model {spec!r}; give a config name ({', '.join(CONFIGS)}) or a weights file")


def available_backends(model: StackedHourglass, threads: int) -> list:
    """Every backend this machine can run, in the order the tables list them."""
    from poselive import backends

    found = [backends.TorchCPUBackend(model)]
    if backends.onnxruntime_available():
        found.append(backends.make_backend(model, "onnx", threads=threads))
    if torch.cuda.is_available():
        found.append(backends.make_backend(model, "cuda"))
    return found


# ----------------------------------------------------------------------------------------------- sections
def stage_rows(backend, cfg: NetConfig, frame: np.ndarray, boxes: list, repeats: int, warmup: int
               ) -> list[list[float]]:
    """Per-iteration seconds of preprocess, network, decode for one batch of crops from `frame`, timed inside
    `KeypointModel.estimate_crops` (the path the pipeline takes)."""
    model = KeypointModel.from_backend(backend)
    boxes_xywh = np.asarray(boxes, np.float64)

    def once() -> list[float]:
        timer = StageTimer()
        model.estimate_crops(frame, boxes_xywh, timer=timer)
        return [timer.ms[s] / 1000.0 for s in ("preprocess", "network", "decode")]

    for _ in range(warmup):
        once()
    return [once() for _ in range(repeats)]


def backend_tables(model: StackedHourglass, backends: list, repeats: int) -> str:
    cfg = model.cfg
    frame = np.random.default_rng(0).integers(0, 256, (FRAME_WH[1], FRAME_WH[0], 3), dtype=np.uint8)
    warmup = max(3, repeats // 10)
    per_stage, throughput = [], []
    for backend in backends:
        for batch in (1, 8):
            times = np.asarray(stage_rows(backend, cfg, frame, BOXES_XYWH[:batch], repeats, warmup))
            total = times.sum(1)
            if batch == 1:
                for name, col in zip(("preprocess", "network", "decode", "total"), (*times.T, total)):
                    per_stage.append([backend.name, name, *percentiles_ms(list(col))])
            med, p90 = percentiles_ms(list(total))
            throughput.append([backend.name, batch, med, p90, med / batch, 1e3 * batch / med])
    w, h = cfg.input_wh
    return "\n\n".join([
        format_table(["backend", "stage", "median ms", "p90 ms"], per_stage,
                     f"Per crop, batch 1, {h}x{w} (H x W) crop from a {FRAME_WH[0]}x{FRAME_WH[1]} frame"),
        format_table(["backend", "batch", "median ms", "p90 ms", "ms/crop", "crops/s"], throughput,
                     "Throughput, preprocess + network + decode per batch"),
    ])


def thread_time_calls(fn: Callable[[], object], repeats: int, warmup: int) -> list[float]:
    """CPU seconds of the calling thread per call of `fn` (other processes on the cores do not count)."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.thread_time()
        fn()
        out.append(time.thread_time() - t0)
    return out


def single_thread_table(model: StackedHourglass, repeats: int) -> str:
    """Network compute per crop on one thread, as CPU time: wall-clock tables are inflated when other processes
    share the cores, this one much less (it is about the wall time on an idle core)."""
    from poselive import backends

    w, h = model.cfg.input_wh
    x = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
    runners = [backends.TorchCPUBackend(model)]
    if backends.onnxruntime_available():
        # One intra-op thread: ONNX Runtime then runs on the calling thread, so thread_time sees all its work.
        runners.append(backends.make_backend(model, "onnx", threads=1))
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for backend in runners:
            med, p90 = percentiles_ms(thread_time_calls(lambda: backend.run(x), repeats, max(3, repeats // 10)))
            rows.append([backend.name, med, p90])
    finally:
        torch.set_num_threads(threads)
    return format_table(["backend", "cpu ms", "p90 cpu ms"], rows,
                        f"Network on one thread, batch 1, {h}x{w}: CPU time of the calling thread "
                        "(about the wall time on an idle core)")


def stats_table(cfg: NetConfig) -> str:
    stats = model_stats(cfg)
    w, h = stats.input_wh
    return format_table(["model", "input (H x W)", "params (M)", "GFLOPs"],
                        [[cfg.name, f"{h}x{w}", stats.params / 1e6, round(stats.gflops, 3)]],
                        "Model size (FLOPs count a multiply-add as 2)")


def decode_table(repeats: int, blur_sigma: float) -> str:
    rows = []
    rng = np.random.default_rng(0)
    for shape in DECODE_SHAPES:
        n, k, h, w = shape
        # Gaussian targets at random points plus a little noise: what a trained network's output looks like.
        xy = rng.uniform([2, 2], [w - 3, h - 3], (n * k, 2))
        maps = np.stack([codec.encode_gaussian(p[None], np.ones(1, bool), (w, h), 2.0)[0][0] for p in xy])
        heatmaps = (maps + 0.02 * rng.standard_normal(maps.shape)).astype(np.float32).reshape(shape)
        label = "x".join(map(str, shape))
        ref_med, ref_p90 = percentiles_ms(time_calls(
            lambda: codec.decode_heatmaps_reference(heatmaps, blur_sigma), repeats, 3))
        if codec.IMPLEMENTATION == "cython":
            cy_med, cy_p90 = percentiles_ms(time_calls(lambda: codec.decode_heatmaps(heatmaps, blur_sigma),
                                                       repeats, 3))
            rows.append([label, cy_med, cy_p90, ref_med, ref_p90, f"{ref_med / cy_med:.1f}x"])
        else:
            rows.append([label, "not built", "-", ref_med, ref_p90, "-"])
    why = "" if codec.IMPLEMENTATION == "cython" else (
        " (POSELIVE_PURE_PYTHON is set)" if os.environ.get("POSELIVE_PURE_PYTHON") else
        " (compiled decoder not built; `pip install -e .`)")
    return format_table(["heatmaps", "cython ms", "cython p90", "numpy ms", "numpy p90", "speed-up"], rows,
                        f"Decode (DARK, blur sigma {blur_sigma:g}): compiled vs numpy reference{why}")


# ----------------------------------------------------------------------- sections added by other modules
# The whole-pipeline and MediaPipe comparisons are written by the modules that own those stages. Each is a
# function of the parsed arguments that returns its table(s) as text; bench_command prints what they return.
def previous_pipeline(device: str = "auto"):
    """The live pipeline as it ran before it asked the detector for evidence (body-det-2 every 8 frames at 0.2,
    tracks kept alive by their own crops): the baseline the live pipeline's frame time is held against."""
    from poselive.estimator import PoseEstimator
    from poselive.pipeline import Pipeline, PipelineConfig
    from poselive.tracking import TrackerConfig
    return Pipeline(PoseEstimator("body-lite", device=device, detector="body-det-2"), PipelineConfig(
        detect_every=8, det_threshold=0.2, confirm_threshold=0.2,
        tracker=TrackerConfig(min_new_score=0.35, max_lost=30, min_hits=3)))


def time_pipeline(source: str, max_frames: int = 100, device: str = "auto", pipe=None) -> dict:
    """Run the real pipeline (the defaults, or `pipe`) over up to `max_frames` frames of a source and collect
    per-stage ms, end-to-end ms per frame (pipeline + overlay) and capture-to-overlay latency."""
    from poselive.live import Overlay, build_pipeline, stream
    pipe = pipe or build_pipeline("body", device)
    stages: dict[str, list[float]] = {}
    total, latency, people = [], [], []
    for i, live in enumerate(stream(source, pipe, max_frames=max_frames, overlay=Overlay())):
        done = time.monotonic()
        if i < 3:  # warm-up: first ONNX runs and the first detection
            continue
        ms = live.result.times.ms  # the pipeline's stages and "render"
        for k, v in ms.items():
            stages.setdefault(k, []).append(v)
        total.append(sum(ms.values()))
        latency.append((done - live.result.frame.capture_time) * 1000.0)
        people.append(len(live.result.people))
    return {"stages": stages, "total": total, "latency": latency, "people": people,
            "backend": pipe.estimator.keypoints.backend.name}


def pipeline_section(args) -> str:
    tables = []
    for src in args.pipeline:
        r = time_pipeline(src, max_frames=args.frames)
        if not r["total"]:
            tables.append(f"Pipeline on {src}: fewer than 4 frames")
            continue
        rows = []
        for name, v in r["stages"].items():
            rows.append([name, *(f"{x:.2f}" for x in np.percentile(v, [50, 90])), f"{len(v)}"])
        rows.append(["frame (all stages + render)", *(f"{x:.2f}" for x in np.percentile(r["total"], [50, 90])),
                     f"{len(r['total'])}"])
        rows.append(["capture -> overlay latency", *(f"{x:.2f}" for x in np.percentile(r["latency"], [50, 90])),
                     f"{len(r['latency'])}"])
        before = time_pipeline(src, max_frames=args.frames, pipe=previous_pipeline())
        if before["total"]:
            rows.append([f"frame, before detector evidence ({np.mean(before['people']):.1f} people per frame)",
                         *(f"{x:.2f}" for x in np.percentile(before["total"], [50, 90])), f"{len(before['total'])}"])
            rows.append(["ratio: frame now / before", *(f"{a / b:.2f}" for a, b in zip(
                np.percentile(r["total"], [50, 90]), np.percentile(before["total"], [50, 90]))), ""])
        from poselive.pipeline import PipelineConfig
        every = PipelineConfig().detect_every
        tables.append(format_table(["stage", "median ms", "p90 ms", "frames"], rows,
                                   f"Pipeline on {src} ({r['backend']}; mean {np.mean(r['people']):.1f} people "
                                   f"per frame; detector every {every} frames, crops from tracks between)"))
    return "\n\n".join(tables)


def single_person_photo() -> Path | None:
    """A validation photo of one person (fashion_a image 7, never trained on), if the shared data is here."""
    from poselive.train.coco_data import data_root
    import json
    p = data_root() / "body" / "fashion_a" / "person_keypoints.json"
    if not p.exists():
        return None
    images = {im["id"]: im["file_name"] for im in json.loads(p.read_text())["images"]}
    return p.parent / "images" / images[7]


def time_ours_on_photo(photo: Path, repeats: int, device: str = "auto") -> tuple[float, float]:
    """Our whole pipeline on one photo fed as a video (tracking mode, as MediaPipe's): median, p90 ms."""
    import cv2
    from poselive.live import build_pipeline
    from poselive.records import Frame
    image = cv2.imread(str(photo))
    pipe = build_pipeline("body", device)
    times = []
    for i in range(repeats + 3):
        t = time.perf_counter()
        pipe(Frame(image, i, time.monotonic(), i / 30.0))
        if i >= 3:
            times.append(time.perf_counter() - t)
    return percentiles_ms(times)


def time_still_photo(photo: Path, repeats: int, device: str = "auto") -> tuple[float, float]:
    """`PoseEstimator(image)` on one photo, as `predict` runs it (detector, keypoints refined in the box the
    joints span, flip test: four network passes per person): median, p90 ms."""
    import cv2
    from poselive.estimator import PoseEstimator
    image = cv2.imread(str(photo))
    est = PoseEstimator("body-lite", device=device)
    return percentiles_ms(time_calls(lambda: est(image), repeats, warmup=3))


def mediapipe_section(args) -> str:
    """MediaPipe BlazePose Full process() (tracking mode) beside our pipeline, on the same single-person photo."""
    from poselive.baselines.mediapipe_pose import require_mediapipe, time_mediapipe
    try:
        require_mediapipe()  # before anything else: without it there is nothing to compare
    except PoseliveError as e:
        return f"MediaPipe comparison: {e}"
    photo = single_person_photo()
    if photo is None:
        return "MediaPipe comparison: no shared data here (set POSELIVE_DATA)"
    try:
        mp = time_mediapipe(photo, repeats=30)
    except PoseliveError as e:
        return f"MediaPipe comparison: {e}"
    ours = time_ours_on_photo(photo, 30)
    still = time_still_photo(photo, 30)
    rows = [["MediaPipe BlazePose Full, process() (tracking)", f"{mp['median_ms']:.2f}", f"{mp['p90_ms']:.2f}"],
            ["poselive body-lite + body-det-2, whole pipeline (tracking)", f"{ours[0]:.2f}", f"{ours[1]:.2f}"],
            ["poselive PoseEstimator, still photo (refine + flip test)", f"{still[0]:.2f}", f"{still[1]:.2f}"]]
    note = "" if mp.get("found_fraction", 1) >= 1 else f"; BlazePose found the person in {mp['found_fraction']:.0%}"
    return format_table(["model", "median ms", "p90 ms"], rows,
                        f"Single-person frame {photo.name} {tuple(mp['image_wh'])}, 30 runs each; MediaPipe / "
                        f"poselive = {mp['median_ms'] / ours[0]:.2f}x{note}")


def face_section(args, repeats: int = 50) -> str:
    """One face, end to end (crop, face-lite network, decode, head-pose fit) with ONNX Runtime, on a validation
    face of the shared data (never trained on), with dlib's 68-point predictor on the same box when installed."""
    import cv2
    from poselive.face_detect import face_box_from_landmarks
    from poselive.face_estimator import FaceEstimator
    from poselive.train.face_data import face_records, split_of_face
    try:
        rec = next(r for r in face_records() if split_of_face(r) == "val")
    except StopIteration:
        return "Face timing: no shared face data here (set POSELIVE_DATA)"
    image = cv2.imread(rec.image_path)
    box = face_box_from_landmarks(rec.keypoints)
    rows = []
    try:
        # One estimator (one ONNX Runtime session) for every row: separate sessions differed by up to 2 ms here,
        # more than the head-pose fit itself costs.
        est = FaceEstimator("face-lite", device=args.face_device)
        for what, fit_pose, refine in (("landmarks only", False, False), ("landmarks + head pose", True, False),
                                       ("landmarks + head pose (robust refit)", True, True)):
            est.fit_pose, est.refine_pose = fit_pose, refine
            med, p90 = percentiles_ms(time_calls(lambda: est.estimate(image, np.asarray([box])), repeats, 5))
            rows.append([f"poselive face-lite ({est.landmarks.backend.name}), {what}", f"{med:.2f}", f"{p90:.2f}"])
    except PoseliveError as e:
        return f"Face timing: {e}"
    try:
        from poselive.baselines.dlib_face import DlibFace68
        dlib_face = DlibFace68()
        med, p90 = percentiles_ms(time_calls(lambda: dlib_face(image, [box]), repeats, 5))
        rows.append(["dlib 68-point shape predictor (same box)", f"{med:.2f}", f"{p90:.2f}"])
    except PoseliveError as e:
        rows.append([f"dlib: {e}", "-", "-"])
    h, w = image.shape[:2]
    return format_table(["one face, given its box", "median ms", "p90 ms"], rows,
                        f"Face {Path(rec.image_path).name} ({w}x{h}), {repeats} runs each")


CLOSE_UP_CLIP = Path("videos") / "face_recognition_short_hamilton_clip.mp4"


def time_live_faces(clip: Path, max_frames: int | None = None, device: str = "auto", rounds: int = 2) -> dict:
    """The clip through `run --task body` and `run --task body,face` (the live pipelines, taking turns in this
    process, `rounds` times each): each one's fastest wall seconds over its frames (models loaded before; on
    a shared machine a single run of either moved by 2x with the load), and the face stage's ms per frame,
    split by whether the frame came out with a face."""
    from poselive.live import build_pipeline, stream
    out: dict = {"with_face": [], "without_face": [], "body": float("inf"), "body,face": float("inf")}
    for tasks in ("body", "body,face") * rounds:
        pipe = build_pipeline(tasks, device)
        t0, frames = time.perf_counter(), 0
        for live in stream(str(clip), pipe, max_frames=max_frames):
            ms = live.result.times.ms.get("face")
            if ms is not None and frames >= 3:  # warm-up: first ONNX runs, first detections
                out["with_face" if live.result.faces else "without_face"].append(ms / 1e3)
            frames += 1
        out[tasks] = min(out[tasks], time.perf_counter() - t0)
        out["frames"] = frames
    return out


def live_face_table(device: str = "auto") -> str:
    """The live face stage on the close-up clip, per frame with and without a face, and what it adds to a run."""
    from poselive.train.coco_data import data_root
    clip = data_root() / CLOSE_UP_CLIP
    if not clip.exists():
        return f"Live face stage: the close-up clip is not at {clip} (set POSELIVE_DATA)"
    try:
        r = time_live_faces(clip, device=device)
    except PoseliveError as e:
        return f"Live face stage: {e}"
    rows = []
    for key, what in (("with_face", "face stage, frames with a face"), ("without_face", "face stage, frames without")):
        if r[key]:
            med, p90 = percentiles_ms(r[key])
            rows.append([what, f"{med:.2f}", f"{p90:.2f}", f"{len(r[key])}"])
        else:
            rows.append([what, "-", "-", "0"])
    body, both = r["body"], r["body,face"]
    return format_table(["live face stage (run --task body,face)", "median ms", "p90 ms", "frames"], rows,
                        f"Close-up clip {clip.name}, {r['frames']} frames: run --task body {body:.1f} s, "
                        f"--task body,face {both:.1f} s ({both / body:.2f}x; the faster of 2 runs each, taking turns)")


def bench_command(args) -> int:
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    model, source = resolve_model(args.model)
    backends = available_backends(model, threads)
    repeats = max(1, int(args.repeats))
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    print(f"poselive bench: model {model.cfg.name}, {source}")
    print(f"machine: {platform.machine()}, {threads} CPU cores{gpu}; torch {torch.__version__} with {threads} "
          f"threads, ONNX Runtime intra-op threads {threads}; {repeats} timed runs after warm-up; decoder "
          f"{codec.IMPLEMENTATION}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5 * threads:
        print(f"note: load average {load:.1f} on {threads} cores before starting; other processes share the "
              f"cores, so wall-clock times are inflated")
    print()
    sections = [stats_table(model.cfg), backend_tables(model, backends, repeats),
                single_thread_table(model, repeats), decode_table(repeats, model.cfg.blur_sigma)]
    if args.pipeline:
        sections.append(pipeline_section(args))
    if args.mediapipe:
        sections.append(mediapipe_section(args))
    if args.face:
        sections.append(face_section(args, repeats))
        sections.append(live_face_table())
    if args.cluster:
        from poselive.cluster import bench_cluster
        sections.append(bench_cluster())
    if args.stream:
        from poselive.publish.server import bench_stream, bench_table
        sections.append(bench_table(bench_stream()))
    print("\n\n".join(sections))
    return 0
