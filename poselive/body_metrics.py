"""Scores for body keypoints: OKS AP/AR (pycocotools), PCK, mean pixel error, recall at OKS 0.5, and the
plain-text tables that put several methods side by side.

Coordinates everywhere are original-image px (0-based pixel centres), as in the COCO json files. Ground truth is
a pycocotools `COCO` object; predictions are COCO keypoint results:
`{"image_id": int, "category_id": 1, "keypoints": [x, y, s] * 17, "score": float}`, made by
`keypoint_result` (serialize.coco_keypoint_result).
"""
from __future__ import annotations

import contextlib
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy.optimize import linear_sum_assignment

from poselive.boxes import box_iou
from poselive.schemas import COCO17, KeypointSchema
from poselive.serialize import coco_keypoint_result as keypoint_result  # noqa: F401 (what the scores here read)
from poselive.tables import format_table

PERSON_CATEGORY = 1


@dataclass(frozen=True)
class BodyScores:
    """One method's scores on one set. Fractions in [0, 1]; None where the run does not measure it (PCK and
    pixel error need a prediction paired with each GT person, which only box-driven runs have).

    ap, ap50, ap75, ar: COCO keypoint AP / AR over OKS 0.50:0.95 (ap50, ap75 at one threshold);
    recall_oks50: fraction of GT people with keypoints matched one-to-one by a prediction with OKS >= 0.5;
    pck: PCK@0.2 of the person box's longer side over labelled joints; pck_per_joint: (K,) tuple, NaN for a
    joint never labelled; mean_error_px: mean distance over labelled joints in image px;
    people: GT people with keypoints scored; predictions: results handed to COCOeval."""
    ap: float
    ap50: float
    ap75: float
    ar: float
    recall_oks50: float
    people: int
    predictions: int
    pck: float | None = None
    pck_per_joint: tuple[float, ...] | None = None
    mean_error_px: float | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        if self.pck_per_joint is not None:  # NaN is not JSON
            d["pck_per_joint"] = [None if math.isnan(v) else v for v in self.pck_per_joint]
        return d


# ------------------------------------------------------------------------------------------ ground truth
def coco_ground_truth(source: str | Path | dict) -> COCO:
    """A pycocotools COCO object from a keypoint json file or an in-memory dict of the same shape (images,
    annotations, categories). Annotations need `area` (the OKS scale); one without it gets its box's area."""
    data = json.loads(Path(source).read_text()) if isinstance(source, (str, Path)) else source
    data = dict(data)
    data.setdefault("categories", [{"id": PERSON_CATEGORY, "name": "person"}])
    anns = []
    for a in data["annotations"]:
        a = dict(a)
        a.setdefault("iscrowd", 0)
        if "area" not in a:
            a["area"] = float(a["bbox"][2] * a["bbox"][3])
        if "num_keypoints" not in a:
            a["num_keypoints"] = int((np.asarray(a["keypoints"]).reshape(-1, 3)[:, 2] > 0).sum())
        anns.append(a)
    data["annotations"] = anns
    gt = COCO()
    gt.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
        gt.createIndex()
    return gt


# ------------------------------------------------------------------------------------------------- OKS
def oks_evaluation(gt: COCO, results: list[dict], schema: KeypointSchema = COCO17) -> COCOeval | None:
    """COCOeval (iouType 'keypoints') run to the summary; None when there are no results to score."""
    if not results:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes([dict(r) for r in results])  # loadRes writes into the dicts it gets
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(schema.sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def recall_at_oks(ev: COCOeval | None, gt: COCO, threshold: float = 0.5) -> float:
    """Fraction of GT people with keypoints (not crowd) that a prediction covers with OKS >= threshold, each
    prediction matched to at most one person (Hungarian assignment on OKS, per image). Uses the OKS matrices
    COCOeval computed (its `maxDets`, 20, best-scored predictions per image)."""
    wanted = [a for a in gt.dataset["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]
    if not wanted:
        return 0.0
    if ev is None:
        return 0.0
    hits = 0
    for img_id in {a["image_id"] for a in wanted}:
        oks = np.asarray(ev.ious.get((img_id, PERSON_CATEGORY), []), np.float64)
        if oks.size == 0:
            continue
        gts = ev._gts[img_id, PERSON_CATEGORY]  # the columns of `oks`, in order
        cols = [j for j, g in enumerate(gts) if g["num_keypoints"] > 0 and not g["iscrowd"]]
        m = oks[:, cols]
        rows, cs = linear_sum_assignment(-m)
        hits += int((m[rows, cs] >= threshold).sum())
    return hits / len(wanted)


def people_boxed(gt_boxes: np.ndarray, detections: np.ndarray, iou: float = 0.5) -> int:
    """How many of one image's people (M, 4) xywh some detection (D, 4+) overlaps at box IoU >= `iou`: the
    detector's recall count, whatever keypoints are later found in the boxes."""
    gt_boxes, detections = np.asarray(gt_boxes).reshape(-1, 4), np.asarray(detections)
    if len(gt_boxes) == 0 or len(detections) == 0:
        return 0
    return int((box_iou(gt_boxes, detections[:, :4]).max(1) >= iou).sum())


def box_ap50(gt_boxes: list[np.ndarray], detections: list[np.ndarray]) -> float:
    """Person-detector AP at box IoU 0.5 (pycocotools 'bbox', up to 100 detections an image): gt_boxes per
    image (M, 4) xywh, detections per image (D, 5) xywh + score. Unlike F1 at one score threshold it does not
    move when training merely shifts the scores' calibration."""
    boxes = [(i + 1, b) for i, bs in enumerate(gt_boxes) for b in np.asarray(bs).reshape(-1, 4)]
    dets = [{"image_id": i + 1, "category_id": PERSON_CATEGORY, "bbox": [float(v) for v in d[:4]],
             "score": float(d[4])} for i, ds in enumerate(detections) for d in np.asarray(ds).reshape(-1, 5)]
    if not boxes or not dets:
        return 0.0
    gt = coco_ground_truth({"images": [{"id": i + 1} for i in range(len(gt_boxes))],
                            "annotations": [{"id": k + 1, "image_id": i, "category_id": PERSON_CATEGORY,
                                             "bbox": [float(v) for v in b], "num_keypoints": 0}
                                            for k, (i, b) in enumerate(boxes)]})
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return max(float(ev.stats[1]), 0.0)


# ------------------------------------------------------------------------------------------ paired scores
def pck(pred: np.ndarray, gt: np.ndarray, boxes_xywh: np.ndarray, alpha: float = 0.2
        ) -> tuple[float, np.ndarray]:
    """PCK@alpha of the box's longer side over labelled joints (v > 0): (overall, per joint (K,)).

    pred (M, K, >=2) and gt (M, K, 3) in image px, person i of pred paired with person i of gt; boxes_xywh
    (M, 4) the GT boxes. A NaN prediction is a miss. A joint never labelled gets NaN; overall is 0 when nothing
    is labelled."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    lab = gt[:, :, 2] > 0
    thr = alpha * np.asarray(boxes_xywh, np.float64)[:, 2:4].max(1)
    ok = (np.linalg.norm(pred[:, :, :2] - gt[:, :, :2], axis=2) <= thr[:, None]) & lab
    n = lab.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(n > 0, ok.sum(0) / np.maximum(n, 1), np.nan)
    return float(ok.sum() / lab.sum()) if lab.any() else 0.0, per_joint


def mean_error_px(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean Euclidean distance in image px over labelled joints (v > 0) that were predicted (a NaN prediction
    means the method found no one there: it counts as a miss in PCK but has no distance); NaN when none."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    d = np.linalg.norm(pred[:, :, :2] - gt[:, :, :2], axis=2)[gt[:, :, 2] > 0]
    d = d[~np.isnan(d)]
    return float(d.mean()) if d.size else float("nan")


def score_body(gt: COCO, results: list[dict], paired: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
               schema: KeypointSchema = COCO17) -> BodyScores:
    """All scores for one method. paired: (pred (M, K, >=2), gt (M, K, 3), GT boxes (M, 4)) when each GT
    person has its own prediction (box-driven runs), for PCK and pixel error."""
    ev = oks_evaluation(gt, results, schema)
    # COCOeval.stats: 0 AP, 1 AP50, 2 AP75, 3 AP medium, 4 AP large, 5 AR, ...; -1 where undefined.
    stats = [max(float(v), 0.0) for v in ev.stats] if ev is not None else [0.0] * 10
    people = sum(1 for a in gt.dataset["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"])
    extra = {}
    if paired is not None:
        pred, gt_kps, boxes = paired
        overall, per_joint = pck(pred, gt_kps, boxes)
        extra = dict(pck=overall, pck_per_joint=tuple(float(v) for v in per_joint),
                     mean_error_px=mean_error_px(pred, gt_kps))
    return BodyScores(ap=stats[0], ap50=stats[1], ap75=stats[2], ar=stats[5],
                      recall_oks50=recall_at_oks(ev, gt), people=people, predictions=len(results), **extra)


# ------------------------------------------------------------------------------------------------ tables
def format_comparison(methods: dict[str, BodyScores], schema: KeypointSchema = COCO17) -> str:
    """Methods side by side: one table of the summary scores (rows = methods), then per-joint PCK@0.2
    (rows = joints, one column per method that has it)."""
    rows = []
    for name, s in methods.items():
        px = None if s.mean_error_px is None or math.isnan(s.mean_error_px) else f"{s.mean_error_px:.1f}"
        rows.append([name, s.ap, s.ap50, s.ar, s.recall_oks50, s.pck, px, s.people, s.predictions])
    text = format_table(["method", "AP", "AP50", "AR", "recall@OKS.5", "PCK@0.2", "mean err px", "people",
                         "preds"], rows, decimals=3)
    with_joints = {n: s for n, s in methods.items() if s.pck_per_joint is not None}
    if with_joints:
        joint_rows = [[j] + [s.pck_per_joint[k] for s in with_joints.values()]
                      for k, j in enumerate(schema.keypoints)]
        text += "\n\n" + format_table(["PCK@0.2 per joint"] + list(with_joints), joint_rows, decimals=3)
    return text
