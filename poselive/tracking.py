"""Stable person ids across frames: match each frame's people to the live tracks by OKS (object keypoint
similarity, the COCO metric, with the schema's sigmas and the area of the boxes) using the Hungarian
algorithm; compare boxes by IoU instead when too few confident keypoints are shared.

A track that finds no match is kept for `max_lost` frames, its pose carried forward at its last velocity, so
a person hidden for a moment (crossing behind someone) keeps the id. Only people with enough score open a
new track. `predicted_boxes()` tells the pipeline where each live track should be in the next frame, so it
can crop from there instead of running detection on every frame.

Faces (poselive.records.Face, with FACE68, which has no OKS sigmas) are tracked by box IoU alone.

Frames are counted by Frame.index (the source's frame number), so frames a live grabber dropped still count as
time passing.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from poselive.boxes import box_iou, match_boxes
from poselive.records import Face, Person
from poselive.schemas import COCO17, KeypointSchema

_NO_MATCH = 1e6


def _points(record: Person | Face) -> np.ndarray:
    """(K, 3) x, y image px and score of a Person's keypoints or a Face's landmarks, float64."""
    return np.asarray(record.points, np.float64)


@dataclass(frozen=True)
class TrackerConfig:
    """oks_threshold / iou_threshold: the least similarity that counts as the same person (OKS when both
    poses share at least `min_shared_keypoints` keypoints scored >= min_keypoint_score, else box IoU);
    max_lost: frames a track survives without a match; min_new_score: person score needed to open a track;
    predict_motion: carry unmatched tracks forward at constant velocity (px per frame, smoothed with
    velocity_smoothing in (0, 1]: the weight of the newest observation); reacquire_*: see below (0 distance
    turns it off)."""
    oks_threshold: float = 0.3
    # OKS tolerances are COCO's sigmas times this. COCO's sigmas measure how much human annotators disagree
    # (a 100 px tall person's eye within ~3 px); our joints on a small, moving walker jitter far more from
    # frame to frame. On vtest.avi (about 10 walkers) scale 1 left ~150 live tracks after 150 frames; after
    # 100 frames there were 41 at scale 3, 26 at 5 and 20 at 10: a walker who fails to match their own track
    # opens a second one, whose crop then finds the same body again. The Hungarian step still gives each body
    # its closest track.
    oks_sigma_scale: float = 10.0
    iou_threshold: float = 0.3
    min_keypoint_score: float = 0.3
    min_shared_keypoints: int = 3
    max_lost: int = 10
    min_new_score: float = 0.5
    predict_motion: bool = True
    velocity_smoothing: float = 0.5
    # Second chance for tracks lost for a while: a person left unmatched by OKS/IoU takes the id of an unmatched
    # track whose box centre (predicted, or where it was last seen) lies within `reacquire_distance` x the
    # track's box height (the allowance grows by reacquire_growth per lost frame, up to twice), at a similar
    # height (ratio within 1/reacquire_size_ratio..reacquire_size_ratio). A detector that misses a walker for
    # a few seconds then re-finds them beside where they were: without this the walker gets a new id.
    reacquire_distance: float = 0.5
    reacquire_growth: float = 0.03
    reacquire_size_ratio: float = 1.5
    # The box a track asks the pipeline to crop next (predicted_boxes) shrinks by at most this factor a frame.
    # Around a close-up (a webcam's head and shoulders) only the face and shoulders are confident; a crop cut
    # to those alone shows the network a face, which finds fewer joints still, and in two or three frames the
    # crop had collapsed onto the head and the person was lost (the close-up clip, frames 96-99).
    crop_shrink: float = 0.97
    # A track is confirmed once matched in this many frames (SORT's min_hits); `confirmed_ids()` tells the caller,
    # which may hold back the unconfirmed: a pose found once and never again is more often a false find.
    min_hits: int = 1
    # Evidence that a person is still there, from outside the tracker (the person detector, through `confirm`).
    # A crop that follows its own last keypoints keeps finding "a person" in a lamp post once it has started
    # there: the keypoint network agrees with its own previous answer. With `max_unconfirmed` set, a track the
    # detector has not backed for more than that many frames ends, and a track is confirmed (reported) only once
    # the detector has backed it. None: no outside evidence is asked for (faces, or callers without a detector).
    max_unconfirmed: int | None = None
    confirm_iou: float = 0.3


class _Track:
    """A tracked person. keypoints (K, 3) and box_xywh (4,) are image px at `last_frame`; velocity (2,) px
    per frame. Keypoints that were weak in the last match keep their previous (moved) position with a
    decaying score."""

    def __init__(self, track_id: int, person: Person | Face, frame_index: int):
        self.track_id = track_id
        self.keypoints = _points(person).copy()
        self.box_xywh = np.asarray(person.bbox, np.float64).copy()
        self.last_frame = frame_index
        self.velocity = np.zeros(2)
        self.extent = self.box_xywh[2:].copy()  # (w, h) the crop may not shrink below (see crop_shrink)
        self.hits = 1
        self.first_frame = frame_index
        self.backed_frame: int | None = None  # the last frame the detector found a person here (confirm)

    def unbacked_frames(self, frame_index: int) -> int:
        """Frames since the detector last backed this track (since it began, if never)."""
        return frame_index - (self.first_frame if self.backed_frame is None else self.backed_frame)

    def shift(self, frame_index: int, config: TrackerConfig) -> np.ndarray:
        """Displacement (2,) px predicted from the last match to `frame_index`."""
        if not config.predict_motion:
            return np.zeros(2)
        gap = min(max(frame_index - self.last_frame, 0), config.max_lost)
        return self.velocity * gap

    def predicted(self, frame_index: int, config: TrackerConfig) -> tuple[np.ndarray, np.ndarray]:
        """(keypoints (K, 3), box_xywh (4,)) expected at `frame_index`."""
        d = self.shift(frame_index, config)
        kp = self.keypoints.copy()
        kp[:, :2] += d
        box = self.box_xywh.copy()
        box[:2] += d
        return kp, box

    def update(self, person: Person | Face, frame_index: int, config: TrackerConfig) -> None:
        kp_pred, _ = self.predicted(frame_index, config)
        new_kp = _points(person)
        new_box = np.asarray(person.bbox, np.float64)
        gap = max(frame_index - self.last_frame, 1)
        observed = _displacement(self.keypoints, new_kp, self.box_xywh, new_box, config.min_keypoint_score) / gap
        a = 1.0 if self.hits == 1 else config.velocity_smoothing
        self.velocity = a * observed + (1 - a) * self.velocity
        weak = new_kp[:, 2] < config.min_keypoint_score
        kp = new_kp.copy()
        kp[weak, :2] = kp_pred[weak, :2]
        kp[weak, 2] = np.maximum(new_kp[weak, 2], kp_pred[weak, 2] * 0.8)
        self.extent = np.maximum(new_box[2:], self.extent * config.crop_shrink ** gap)
        self.keypoints, self.box_xywh = kp, new_box.copy()
        self.last_frame = frame_index
        self.hits += 1


def box_center(box_xywh: np.ndarray) -> np.ndarray:
    return np.array([box_xywh[0] + 0.5 * box_xywh[2], box_xywh[1] + 0.5 * box_xywh[3]])


def _displacement(old_kp: np.ndarray, new_kp: np.ndarray, old_box: np.ndarray, new_box: np.ndarray,
                  min_score: float) -> np.ndarray:
    """How far a person moved (2,) px: the median shift of the joints confident in both poses, else the shift
    of the box centre. Joints first, because a box measured around whichever joints are confident jumps when
    they change (legs lost at the frame's edge move the centre up with nobody moving)."""
    both = (old_kp[:, 2] >= min_score) & (new_kp[:, 2] >= min_score)
    if both.sum() >= 3:
        return np.median(new_kp[both, :2] - old_kp[both, :2], axis=0)
    return box_center(new_box) - box_center(old_box)


def keypoint_similarity(a_kpts: np.ndarray, b_kpts: np.ndarray, a_area: np.ndarray, b_area: np.ndarray,
                        sigmas: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """OKS between every pose in a (N, K, 3) and every pose in b (M, K, 3), image px.

    COCO's formula, exp(-d^2 / (2 s^2 (2 sigma)^2)) averaged over the keypoints scored >= min_score in both,
    with s^2 the mean of the two poses' areas (box w * h). Returns (oks (N, M), shared (N, M) int: how many
    keypoints entered the mean; oks is 0 where shared is 0)."""
    a, b = np.asarray(a_kpts, np.float64), np.asarray(b_kpts, np.float64)
    d2 = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(-1)                 # (N, M, K)
    both = (a[:, None, :, 2] >= min_score) & (b[None, :, :, 2] >= min_score)    # (N, M, K)
    area = 0.5 * (np.asarray(a_area, np.float64)[:, None] + np.asarray(b_area, np.float64)[None])
    var = (2.0 * np.asarray(sigmas, np.float64)) ** 2
    e = d2 / (2.0 * np.maximum(area, 1.0)[..., None] * var)
    shared = both.sum(-1)
    oks = (np.exp(-e) * both).sum(-1) / np.maximum(shared, 1)
    return oks, shared


class Tracker:
    """Gives each Person (or Face, with schema=FACE68) a stable track_id (ids start at 1; -1 = not tracked).
    Use one per video or camera, and one per kind of record.

        people = tracker.update(people, frame.index)
    """

    def __init__(self, config: TrackerConfig = TrackerConfig(), schema: KeypointSchema = COCO17):
        self.config = config
        self.schema = schema
        # Without sigmas (face landmarks) there is no OKS: boxes decide.
        self._sigmas = np.asarray(schema.sigmas, np.float64) * config.oks_sigma_scale if schema.sigmas else None
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._frame = -1

    def reset(self) -> None:
        self._tracks.clear()
        self._next_id = 1
        self._frame = -1

    def similarity(self, people: list, frame_index: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarity (N, T), passes (N, T) bool) between `people` and the live tracks predicted to
        `frame_index`: OKS where enough keypoints are shared, else box IoU; `passes` applies the thresholds."""
        cfg = self.config
        n, t = len(people), len(self._tracks)
        if n == 0 or t == 0:
            return np.zeros((n, t)), np.zeros((n, t), bool)
        det_box = np.array([p.bbox for p in people], np.float64)
        pred = [tr.predicted(frame_index, cfg) for tr in self._tracks]
        trk_box = np.stack([box for _, box in pred])
        iou = box_iou(det_box, trk_box)
        if self._sigmas is None:
            return iou, iou > cfg.iou_threshold
        det_kp = np.stack([_points(p) for p in people])
        trk_kp = np.stack([kp for kp, _ in pred])
        oks, shared = keypoint_similarity(det_kp, trk_kp, det_box[:, 2] * det_box[:, 3],
                                          trk_box[:, 2] * trk_box[:, 3], self._sigmas, cfg.min_keypoint_score)
        use_oks = shared >= cfg.min_shared_keypoints
        sim = np.where(use_oks, oks, iou)
        passes = np.where(use_oks, oks > cfg.oks_threshold, iou > cfg.iou_threshold)
        return sim, passes

    def update(self, people: list, frame_index: int) -> list:
        """Match `people` (this frame's Person records, or Face records, image px) to the tracks. Returns the
        same records in the same order with track_id set: a matched track's id, a new id for an unmatched one
        with score >= min_new_score, else -1."""
        cfg = self.config
        if frame_index < self._frame:  # the source restarted: nothing carries over
            self.reset()
        self._frame = frame_index
        sim, passes = self.similarity(people, frame_index)
        ids = [-1] * len(people)
        matched_tracks: set[int] = set()
        if sim.size:
            from scipy.optimize import linear_sum_assignment  # scipy.optimize takes ~0.5 s to import

            # Among equal similarities, prefer the track seen most recently.
            age = np.array([frame_index - tr.last_frame for tr in self._tracks], np.float64)
            cost = np.where(passes, 1.0 - sim + 1e-3 * age[None], _NO_MATCH)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if passes[r, c]:
                    track = self._tracks[c]
                    track.update(people[r], frame_index, cfg)
                    ids[r] = track.track_id
                    matched_tracks.add(c)
        for r, c in self._reacquire(people, ids, matched_tracks, frame_index):
            self._tracks[c].update(people[r], frame_index, cfg)
            ids[r] = self._tracks[c].track_id
        for i, person in enumerate(people):
            if ids[i] < 0 and person.score >= cfg.min_new_score:
                track = _Track(self._next_id, person, frame_index)
                self._next_id += 1
                self._tracks.append(track)
                ids[i] = track.track_id
        self._tracks = [tr for tr in self._tracks if frame_index - tr.last_frame <= cfg.max_lost and
                        (cfg.max_unconfirmed is None or tr.unbacked_frames(frame_index) <= cfg.max_unconfirmed)]
        return [p if p.track_id == tid else dataclasses.replace(p, track_id=tid) for p, tid in zip(people, ids)]

    def _reacquire(self, people: list, ids: list[int], matched: set[int], frame_index: int
                   ) -> list[tuple[int, int]]:
        """(person index, track index) pairs for people the first pass left unmatched (and that could open a
        track) and tracks it left unmatched, by normalised centre distance (see TrackerConfig)."""
        cfg = self.config
        rows = [i for i, p in enumerate(people) if ids[i] < 0 and p.score >= cfg.min_new_score]
        cols = [c for c in range(len(self._tracks)) if c not in matched]
        if cfg.reacquire_distance <= 0 or not rows or not cols:
            return []
        from scipy.optimize import linear_sum_assignment
        cost = np.full((len(rows), len(cols)), _NO_MATCH)
        for j, c in enumerate(cols):
            tr = self._tracks[c]
            gap = frame_index - tr.last_frame
            _, pred_box = tr.predicted(frame_index, cfg)
            h = max(tr.box_xywh[3], 1.0)
            allowed = cfg.reacquire_distance * min(1.0 + cfg.reacquire_growth * gap, 2.0)
            for i, r in enumerate(rows):
                box = np.asarray(people[r].bbox, np.float64)
                ratio = box[3] / h
                if not (1 / cfg.reacquire_size_ratio <= ratio <= cfg.reacquire_size_ratio):
                    continue
                c_new = box_center(box)
                d = min(np.linalg.norm(c_new - box_center(pred_box)), np.linalg.norm(c_new - box_center(tr.box_xywh)))
                if d / h <= allowed:
                    cost[i, j] = d / h
        r_idx, c_idx = linear_sum_assignment(cost)
        return [(rows[i], cols[j]) for i, j in zip(r_idx, c_idx) if cost[i, j] < _NO_MATCH]

    def confirm(self, detections_xywh: np.ndarray, frame_index: int) -> np.ndarray:
        """Outside evidence: person boxes (M, 4+) a detector found in frame `frame_index`. Each is given to at
        most one live track whose box (as of this frame) it overlaps by IoU >= confirm_iou, best overlaps
        first; those tracks count as backed in this frame. Returns (M,) bool: the detections that backed one."""
        dets = np.asarray(detections_xywh, np.float64)
        dets = dets.reshape(len(dets), -1)[:, :4] if dets.size else np.zeros((0, 4))
        used = np.zeros(len(dets), bool)
        boxes = np.array([tr.predicted(frame_index, self.config)[1] for tr in self._tracks]).reshape(-1, 4)
        for r, c in match_boxes(dets, boxes, self.config.confirm_iou):
            self._tracks[c].backed_frame = frame_index
            used[r] = True
        return used

    def predicted_boxes(self, frame_index: int | None = None, from_keypoints: bool = False,
                        padding: float = 0.0) -> dict[int, tuple[float, float, float, float]]:
        """Box (x, y, w, h image px) where each live track is expected at `frame_index` (default: the frame
        after the last update), moved at its velocity. from_keypoints: the box around the confident predicted
        keypoints instead of the last person box (falls back to it with fewer than 2 such keypoints), grown
        by `padding` x its size on each side. The box is then grown about its centre to the track's extent
        (its recent size, shrinking by crop_shrink a frame), so it never collapses onto the few joints that
        happen to be confident. Keys are track ids."""
        cfg = self.config
        frame_index = self._frame + 1 if frame_index is None else frame_index
        out = {}
        for tr in self._tracks:
            kp, box = tr.predicted(frame_index, cfg)
            if from_keypoints:
                good = kp[kp[:, 2] >= cfg.min_keypoint_score, :2]
                if len(good) >= 2:
                    x0, y0 = good.min(0)
                    x1, y1 = good.max(0)
                    box = np.array([x0, y0, x1 - x0, y1 - y0])
            if padding:
                box = np.array([box[0] - padding * box[2], box[1] - padding * box[3],
                                box[2] * (1 + 2 * padding), box[3] * (1 + 2 * padding)])
            gap = max(frame_index - tr.last_frame, 0)
            wh = np.maximum(box[2:], tr.extent * cfg.crop_shrink ** gap)
            box = np.r_[box[:2] + 0.5 * (box[2:] - wh), wh]
            out[tr.track_id] = tuple(float(v) for v in box)
        return out

    @property
    def track_ids(self) -> list[int]:
        """Ids of the live tracks (matched within the last max_lost frames)."""
        return [tr.track_id for tr in self._tracks]

    def confirmed_ids(self) -> set[int]:
        """Ids of the live tracks matched in at least min_hits frames (and, with max_unconfirmed set, backed by
        the detector at least once)."""
        need_backing = self.config.max_unconfirmed is not None
        return {tr.track_id for tr in self._tracks
                if tr.hits >= self.config.min_hits and not (need_backing and tr.backed_frame is None)}

    def lost_frames(self) -> dict[int, int]:
        """Frames since each live track was last matched (0: matched in the latest update), by track id."""
        return {tr.track_id: self._frame - tr.last_frame for tr in self._tracks}
