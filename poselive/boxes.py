"""Box arithmetic shared by the detector, tracking, faces and the pipeline. Boxes are (x, y, w, h) in px."""
from __future__ import annotations

import numpy as np


def _xywh(boxes) -> np.ndarray:
    return np.asarray(boxes, np.float64).reshape(len(boxes), -1)[:, :4] if len(boxes) else np.zeros((0, 4))


def box_intersection(a_xywh, b_xywh) -> np.ndarray:
    """Intersection area of every box in a (N, 4+) with every box in b (M, 4+) -> (N, M); extra columns
    (scores) ignored."""
    a, b = _xywh(a_xywh), _xywh(b_xywh)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    return iw * ih


def box_iou(a_xywh, b_xywh) -> np.ndarray:
    """IoU of every box in a (N, 4+) with every box in b (M, 4+) -> (N, M); extra columns (scores) ignored."""
    a, b = _xywh(a_xywh), _xywh(b_xywh)
    inter = box_intersection(a, b)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def nms(boxes: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression of (M, 5) x, y, w, h, score rows: best first, dropping any box that
    overlaps a kept one by more than `iou`."""
    if len(boxes) == 0:
        return boxes
    boxes = boxes[np.argsort(-boxes[:, 4], kind="stable")]
    alive = np.ones(len(boxes), bool)
    ious = box_iou(boxes, boxes)
    keep = []
    for i in range(len(boxes)):
        if alive[i]:
            keep.append(i)
            alive &= ious[i] <= iou
    return boxes[keep]


def match_boxes(a_xywh, b_xywh, min_iou: float) -> list[tuple[int, int]]:
    """Pairs (i, j) of a box in a (N, 4+) and a box in b (M, 4+), each box in at most one pair, chosen jointly
    for the largest total IoU (Hungarian), keeping pairs that overlap by IoU >= min_iou."""
    if len(a_xywh) == 0 or len(b_xywh) == 0:
        return []
    from scipy.optimize import linear_sum_assignment  # scipy.optimize takes ~0.5 s to import
    iou = box_iou(a_xywh, b_xywh)
    rows, cols = linear_sum_assignment(-iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= min_iou]
