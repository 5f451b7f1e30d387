"""The whole live pipeline timed per stage on real sources (`poselive bench --pipeline`), against the pipeline
as it ran before (`previous_pipeline`), and beside MediaPipe BlazePose (`--mediapipe`)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from poselive.bench.clock import percentiles_ms, time_calls
from poselive.errors import PoseliveError
from poselive.tables import format_table


def previous_pipeline(device: str = "auto"):
    """The live pipeline as it ran before it asked the detector for evidence (body-det-2 every 8 frames at 0.2,
    tracks kept alive by their own crops, people kept from a person score of 0.25): the baseline the live
    pipeline's frame time is held against. It runs today's body-lite weights (the former ones are not shipped)."""
    from poselive.estimator import PoseEstimator
    from poselive.pipeline import Pipeline, PipelineConfig
    from poselive.tracking import TrackerConfig
    return Pipeline(PoseEstimator("body-lite", device=device, detector="body-det-2"), PipelineConfig(
        detect_every=8, det_threshold=0.2, confirm_threshold=0.2, min_person_score=0.25,
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
    from poselive.weights import STILL_MODEL
    image = cv2.imread(str(photo))
    est = PoseEstimator(STILL_MODEL, device=device)
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
