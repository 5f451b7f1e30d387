"""One face end to end and the live face stage on the close-up clip (`poselive bench --face`)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from poselive.bench.clock import percentiles_ms, time_calls
from poselive.errors import PoseliveError
from poselive.tables import format_table


def face_section(args, repeats: int = 50) -> str:
    """One face, end to end (crop, face-lite network, decode, head-pose fit) with ONNX Runtime, on a validation
    face of the shared data (never trained on), with dlib's 68-point predictor on the same box when installed."""
    import cv2
    from poselive.face_detect import face_box_from_landmarks
    from poselive.face_estimator import FaceEstimator
    from poselive.face_refine import PatchRefiner
    from poselive.face_shape import ShapeModel
    from poselive.face_trees import TreeCascade
    from poselive.train.face_data import face_records, split_of_face
    from poselive.weights import FACE_REFINE, FACE_SHAPE, FACE_TREES, resolve_weights
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
        est = FaceEstimator("face-lite", device=args.face_device, trees=None)
        for what, fit_pose, refine, flip in (
                ("landmarks only", False, False, False), ("landmarks + head pose", True, False, False),
                ("landmarks + head pose (robust refit)", True, True, False),
                ("landmarks + head pose, flip test", True, False, True)):
            est.fit_pose, est.refine_pose, est.flip_test = fit_pose, refine, flip
            med, p90 = percentiles_ms(time_calls(lambda: est.estimate(image, np.asarray([box])), repeats, 5))
            rows.append([f"poselive face-lite ({est.landmarks.backend.name}), {what}", f"{med:.2f}", f"{p90:.2f}"])
        # face-full's steps: face-lite's look, then the regression trees from its landmarks (as the live stage
        # runs it), then the patch network after them, on the face and its mirror image, and the shape model
        # (as predict runs it).
        est.fit_pose, est.refine_pose = True, False
        est.trees = TreeCascade.load(resolve_weights(FACE_TREES))
        refiner = PatchRefiner(resolve_weights(FACE_REFINE))
        shape = ShapeModel.load(resolve_weights(FACE_SHAPE))
        for what, est.refiner, est.shape, est.flip_test in (
                (f"{FACE_TREES} trees (live)", None, None, False),
                (f"{FACE_TREES} trees + refine + shape (predict)", refiner, shape, True)):
            med, p90 = percentiles_ms(time_calls(lambda: est.estimate(image, np.asarray([box])), repeats, 5))
            rows.append([f"poselive face-lite + {what}, landmarks + head pose", f"{med:.2f}", f"{p90:.2f}"])
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
