"""Scoring tracks against MOT ground truth (MOTA, IDF1, ID switches, precision, recall, mostly tracked / lost)
with the `motmetrics` package, at box IoU 0.5 as in the MOT benchmarks.

Ground truth is a MOT `gt.txt`: one row per person per frame, `frame, id, x, y, w, h, conf, ...`, boxes in px
(top-left, width, height), frames counted from 1 (MOT frame = video frame index + 1). Rows with conf 0 (people
mostly hidden) count neither way: a prediction matched to one at IoU >= 0.5 is dropped before scoring, and the
row is not counted as missed. Predictions are our JSONL (`poselive track` / `run --json`): per frame, each
person's `bbox` and `track_id`.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from poselive.boxes import box_iou, match_boxes
from poselive.errors import PoseliveError

MATCH_IOU = 0.5


@dataclass(frozen=True)
class FrameBoxes:
    """One frame's people: ids (N,) int and boxes (N, 4) x, y, w, h px."""
    ids: np.ndarray
    boxes: np.ndarray


@dataclass(frozen=True)
class TrackScores:
    """MOT figures over the scored frames; mota, idf1, precision, recall as fractions (x100 for the usual %)."""
    frames: int
    people: int             # distinct ground-truth ids
    gt_boxes: int           # ground-truth boxes scored (conf 1)
    mota: float
    idf1: float
    id_switches: int
    precision: float
    recall: float
    false_positives: int
    misses: int
    mostly_tracked: int
    mostly_lost: int
    track_ids: int          # distinct predicted ids

    def as_dict(self) -> dict:
        return asdict(self)


def read_mot_gt(path: str | Path) -> tuple[dict[int, FrameBoxes], dict[int, np.ndarray]]:
    """MOT gt.txt -> (scored people per video frame index, ignored boxes (conf 0) per video frame index)."""
    try:
        rows = np.loadtxt(path, delimiter=",", ndmin=2)
    except (OSError, ValueError) as e:
        raise PoseliveError(f"cannot read {path} as MOT ground truth (frame,id,x,y,w,h,conf,...): {e}") from None
    if rows.shape[1] < 7:
        raise PoseliveError(f"{path}: expected at least 7 columns (frame,id,x,y,w,h,conf), got {rows.shape[1]}")
    scored: dict[int, FrameBoxes] = {}
    ignored: dict[int, np.ndarray] = {}
    for f in np.unique(rows[:, 0]).astype(int):
        r = rows[rows[:, 0] == f]
        keep = r[:, 6] > 0
        scored[f - 1] = FrameBoxes(r[keep, 1].astype(int), r[keep, 2:6])
        ignored[f - 1] = r[~keep, 2:6]
    return scored, ignored


def frame_boxes(frame_json: dict) -> FrameBoxes:
    """The tracked people (track_id >= 0) of one JSONL line (poselive.outputs.frame_json) as ids and boxes."""
    people = [p for p in frame_json["people"] if p["track_id"] >= 0]
    return FrameBoxes(np.array([p["track_id"] for p in people], int),
                      np.array([p["bbox"] for p in people], np.float64).reshape(-1, 4))


def read_jsonl_people(path: str | Path) -> dict[int, FrameBoxes]:
    """Our JSONL -> per frame index the tracked people's ids and boxes (untracked people, id -1, left out)."""
    out: dict[int, FrameBoxes] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise PoseliveError(f"cannot read {path}: {e.strerror}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            out[int(d["frame"])] = frame_boxes(d)
        except (ValueError, KeyError, TypeError) as e:
            raise PoseliveError(f"{path}:{n}: not a poselive JSONL line ({e})") from None
    return out


def _drop_ignored(hyp: FrameBoxes, gt: FrameBoxes, ignored: np.ndarray) -> FrameBoxes:
    """hyp without the predictions that match an ignored (conf 0) person: one assignment over all ground-truth
    boxes, so a prediction that overlaps both keeps the scored person it matches best."""
    if len(ignored) == 0 or len(hyp.ids) == 0:
        return hyp
    allgt = np.concatenate([gt.boxes.reshape(-1, 4), ignored])
    drop = {r for r, c in match_boxes(hyp.boxes, allgt, MATCH_IOU) if c >= len(gt.ids)}
    keep = np.array([i not in drop for i in range(len(hyp.ids))], bool)
    return FrameBoxes(hyp.ids[keep], hyp.boxes[keep])


def score_tracks(gt: dict[int, FrameBoxes], ignored: dict[int, np.ndarray], hyp: dict[int, FrameBoxes],
                 frames: list[int] | None = None) -> TrackScores:
    """Score predicted tracks `hyp` against `gt` over `frames` (default: every ground-truth frame); a frame with
    no prediction counts as one where nobody was found."""
    import motmetrics as mm
    frames = sorted(gt) if frames is None else frames
    acc = mm.MOTAccumulator(auto_id=False)
    empty = FrameBoxes(np.zeros(0, int), np.zeros((0, 4)))
    hyp_ids: set[int] = set()
    for f in frames:
        g = gt.get(f, empty)
        h = _drop_ignored(hyp.get(f, empty), g, ignored.get(f, np.zeros((0, 4))))
        hyp_ids.update(int(i) for i in h.ids)
        iou = box_iou(g.boxes, h.boxes)
        # motmetrics takes distances (1 - IoU), NaN where a pair may not match.
        dist = np.where(iou >= MATCH_IOU, 1.0 - iou, np.nan)
        acc.update(g.ids.tolist(), h.ids.tolist(), dist, frameid=f)
    names = ["mota", "idf1", "num_switches", "precision", "recall", "num_false_positives", "num_misses",
             "mostly_tracked", "mostly_lost", "num_unique_objects", "num_objects"]
    m = mm.metrics.create().compute(acc, metrics=names, name="all").iloc[0]
    return TrackScores(len(frames), int(m["num_unique_objects"]), int(m["num_objects"]), float(m["mota"]),
                       float(m["idf1"]), int(m["num_switches"]), float(m["precision"]), float(m["recall"]),
                       int(m["num_false_positives"]), int(m["num_misses"]), int(m["mostly_tracked"]),
                       int(m["mostly_lost"]), len(hyp_ids))
