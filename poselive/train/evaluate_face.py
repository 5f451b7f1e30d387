"""`poselive eval --task face`: 68-landmark accuracy on held-out faces with clean human labels, per source and
per kind of face box, with dlib's 68-point predictor beside it.

By default the faces are the validation split of the 300-W sets (`face_data.split_of_face`: about 1 in 5 AFW
photos and 1 in 10 HELEN training photos, by photo, never trained on; YTF68 is training data only). Each face
is scored three ways, by where its box comes from:

  * landmark box: the face box of its annotated landmarks (face_detect.face_box_from_landmarks), every face;
  * Haar box: poselive's own face finder (face_detect.detect_faces_haar, calibrated), on the faces it finds;
  * dlib HOG box: dlib's own face finder, on the faces it finds. dlib's predictor gets the raw HOG rectangle it
    was trained on ("its own boxes"); poselive gets the same box through DLIB_HOG_CALIBRATION.

A finder's box is matched to a face when its centre lies within half a side of the landmark box's centre and
their sides differ by less than 2x. Within one kind of box every method is scored on the same faces and boxes.
Scores (poselive.face_metrics): inter-ocular NME (outer eye corners), failure rate at NME > 0.08, AUC@0.08.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from poselive import face_metrics
from poselive.errors import PoseliveError
from poselive.tables import format_table

log = logging.getLogger(__name__)

BOX_KINDS = ("landmark box", "Haar box", "dlib HOG box")


@dataclass(frozen=True)
class HeldOutFace:
    """One face to score: its photo (read once: every method and kind of box looks at it; the held-out photos are
    at most 384 px a side), source set, annotated landmarks (68, 2) image px, and its face box from each kind of
    box in BOX_KINDS (x, y, w, h image px; None where that finder missed it)."""
    image: np.ndarray
    dataset: str
    landmarks: np.ndarray
    boxes: dict


def matched_box(face_box, found) -> tuple[float, float, float, float] | None:
    """The found box (x, y, w, h) nearest `face_box`'s centre, if within half its side and of a side within
    2x of it; else None."""
    x, y, w, _ = face_box
    c = np.array([x + w / 2, y + w / 2])
    best = None
    for b in found:
        bc = np.array([b[0] + b[2] / 2, b[1] + b[3] / 2])
        d = float(np.linalg.norm(bc - c))
        if d < 0.5 * w and 0.5 < b[2] / w < 2.0 and (best is None or d < best[0]):
            best = (d, tuple(float(v) for v in b))
    return None if best is None else best[1]


def held_out_faces(records, with_dlib: bool) -> list[HeldOutFace]:
    """Each record with the boxes the face finders give it (dlib's only when `with_dlib`)."""
    import cv2

    from poselive.face_detect import detect_faces_dlib, detect_faces_haar
    from poselive.train.evaluate import _progress
    out = []
    for r in _progress(records, "face finders"):
        image = cv2.imread(r.image_path, cv2.IMREAD_COLOR)
        if image is None:
            log.warning("skipping unreadable image %s", r.image_path)
            continue
        boxes = {"landmark box": tuple(float(v) for v in r.box_xywh),
                 "Haar box": matched_box(r.box_xywh, detect_faces_haar(image)),
                 "dlib HOG box": matched_box(r.box_xywh, detect_faces_dlib(image)) if with_dlib else None}
        out.append(HeldOutFace(image, r.dataset, np.asarray(r.keypoints, np.float64)[:, :2], boxes))
    return out


def landmarks_of(predict, faces: list[HeldOutFace], kind: str) -> np.ndarray:
    """`predict(image_bgr, boxes, kind) -> (N, 68, 2+)` on each face that has a box of this kind: (M, 68, 2)."""
    out = []
    for f in faces:
        if f.boxes[kind] is not None:
            out.append(np.asarray(predict(f.image, [f.boxes[kind]], kind), np.float64)[0, :, :2])
    return np.stack(out) if out else np.zeros((0, 68, 2))


@dataclass(frozen=True)
class FaceRow:
    """One line of the table: source set ("all" for every face), kind of box, method, and its scores."""
    source: str
    boxes: str
    method: str
    scores: face_metrics.FaceScores


def score_rows(faces: list[HeldOutFace], methods: dict) -> tuple[list[FaceRow], dict]:
    """Every method (name -> predict, see landmarks_of) on every kind of box, scored per source and over all faces.
    Returns the rows and the per-face NMEs of each (kind, method) over all faces that kind has."""
    rows, nmes = [], {}
    sources = sorted({f.dataset for f in faces})
    for kind in BOX_KINDS:
        have = [f for f in faces if f.boxes[kind] is not None]
        if not have:
            continue
        gt = np.stack([f.landmarks for f in have])
        names = np.array([f.dataset for f in have])
        for method, predict in methods.items():
            if kind == "dlib HOG box" and method.startswith("dlib"):
                method = "dlib 68-point, its own HOG boxes"
            e = face_metrics.nme(landmarks_of(predict, have, kind), gt)
            nmes[(kind, method)] = e
            for source in sources + ["all"]:
                sel = e if source == "all" else e[names == source]
                rows.append(FaceRow(source, f"{kind} ({len(sel)} of "
                                    f"{sum(1 for f in faces if source in ('all', f.dataset))})",
                                    method, face_metrics.FaceScores.of(sel)))
    return rows, nmes


def rows_table(rows: list[FaceRow]) -> str:
    return format_table(
        ["source", "boxes (faces found)", "method", "NME %", "failure % (NME>0.08)", "AUC@0.08"],
        [[r.source, r.boxes, r.method, f"{100 * r.scores.nme:.2f}", f"{100 * r.scores.failure_rate:.1f}",
          f"{r.scores.auc:.3f}"] for r in sorted(rows, key=lambda r: (r.source == "all", r.source))])


def _landmarks(estimator):
    """A FaceEstimator as a method of score_rows."""
    def predict(image, boxes, kind):
        faces = estimator.estimate(image, np.asarray(boxes, np.float64))
        return np.stack([f.landmarks for f in faces])
    return predict


def eval_face(args) -> int:
    """`poselive eval --task face [--model M] [--compare M2 ...] [--baseline] [--data FOLDER ...] [--out F]`."""
    from poselive.face_estimator import FACE_MIN_SCORE, FaceEstimator
    from poselive.train.evaluate import _model_label as _label
    from poselive.train.face_data import face_records, read_face_folder, split_of_face
    from poselive.weights import FACE_REFINE, FACE_SHAPE, FACE_TREES
    if args.data:
        recs = [r for folder in args.data for r in read_face_folder(Path(folder), Path(folder).name)]
        where = ", ".join(args.data)
    else:
        recs = [r for r in face_records() if split_of_face(r) == "val" and r.dataset != "ytf68"]
        where = "the held-out 300-W faces (face_data.split_of_face)"
    if not recs:
        raise PoseliveError("no faces to evaluate on: give folders of .jpg + .pts files with --data")
    models = [args.model or "face-lite"] + list(getattr(args, "compare", None) or [])
    # Each model's own landmarks (one look, no flip test); the first also as `predict` and the live stage run
    # it: followed by face-full's regression trees.
    estimators = {_label(str(m)): FaceEstimator(m, device=args.device, flip_test=False, trees=None) for m in models}
    first = next(iter(estimators.values()))
    methods = {name: _landmarks(est) for name, est in estimators.items()}
    # face-full, as predict runs it: the first model's look, then the trees from the landmarks it found, then
    # the patch network that moves each landmark, then the shape model; and without the last steps, to show
    # what each step brings.
    for trees in getattr(args, "trees", None) or [FACE_TREES]:
        look = f"{_label(str(models[0]))} + {_label(str(trees))}"
        methods[f"{look} trees only"] = _landmarks(FaceEstimator(models[0], device=args.device, trees=trees,
                                                                 refiner=None))
        methods[f"{look} without {FACE_SHAPE}"] = _landmarks(FaceEstimator(models[0], device=args.device,
                                                                           trees=trees, shape=None))
        methods[look if trees == FACE_TREES else f"{look} + {FACE_REFINE}"] = _landmarks(
            FaceEstimator(models[0], device=args.device, trees=trees))
    if args.baseline:
        from poselive.baselines.dlib_face import BaselineUnavailable, DlibFace68
        try:
            dlib_face = DlibFace68()
            methods["dlib 68-point, same boxes"] = lambda image, boxes, kind: dlib_face(image, boxes)
        except BaselineUnavailable as e:
            print(f"baseline skipped: {e}")
    with_dlib = "dlib 68-point, same boxes" in methods
    faces = held_out_faces(recs, with_dlib)
    rows, nmes = score_rows(faces, methods)
    print(f"poselive eval --task face: {len(faces)} faces of {where}")
    print(rows_table(rows))
    if with_dlib:
        # dlib's predictor was trained on iBUG 300-W, whose training set holds these AFW and HELEN photos.
        print("\ndlib's predictor was trained on 300-W, which includes these AFW and HELEN training faces: it is "
              "scored on faces it has seen.")
    # The score as a face detector: the live face stage keeps a face scoring FaceStage's min_score or more.
    on, off = [], []
    for f in faces:
        on.append(first.estimate(f.image, np.array([f.boxes["landmark box"]]))[0].score)
        off += [g.score for g in first.estimate(f.image, np.array(_beside(f.boxes["landmark box"])))]
    on, off = np.array(on), np.array(off)
    gate = FACE_MIN_SCORE
    print(f"\n{next(iter(estimators))}: score >= {gate:g} (the live face gate): {np.mean(on >= gate):.1%} of the "
          f"faces, {np.mean(off >= gate):.1%} of {len(off)} crops a face's width beside them")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        landmark_rows = {r.method: asdict(r.scores) for r in rows
                         if r.source == "all" and r.boxes.startswith("landmark box")}
        out.write_text(json.dumps({
            "task": "face", "faces": len(faces), "methods": landmark_rows,
            "rows": [{"source": r.source, "boxes": r.boxes, "method": r.method, **asdict(r.scores)} for r in rows],
            "face_score_gate": gate, "faces_passing_gate": float(np.mean(on >= gate)),
            "beside_crops_passing_gate": float(np.mean(off >= gate))}, indent=1))
        face_metrics.draw_ced({m: e for (k, m), e in nmes.items() if k == "landmark box"},
                              out.with_suffix(".ced.png"))
        print(f"\nmetrics written to {out}, CED plot (landmark boxes) to {out.with_suffix('.ced.png')}")
    return 0


def _beside(box_xywh) -> list[tuple[float, float, float, float]]:
    """The four boxes one face-width (or height) left, right, above and below a face box."""
    x, y, w, h = box_xywh
    return [(x + dx * w, y + dy * h, w, h) for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1))]
