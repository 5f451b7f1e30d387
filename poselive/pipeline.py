"""The per-frame pipeline: a plain function of a frame (no threads here; capture and GUI own those).

frame -> find people (detector every N frames, or when tracks run out; otherwise crops follow the previous
frame's keypoints) -> crops -> network (batched over people) -> decode -> drop duplicates -> track -> smooth
-> FrameResult. Each stage's time is recorded in StageTimes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from poselive.boxes import box_intersection, match_boxes, nms
from poselive.duplicates import DUPLICATE_IOU, SAME_POSE_OKS, distinct_people
from poselive.estimator import CropHeatmaps, PoseEstimator, body_box, check_image, person_score
from poselive.codec import image_to_heatmap_matrix
from poselive.filters import PoseSmoother, SmootherConfig
from poselive.records import Face, Frame, Person, StageTimes
from poselive.timing import StageTimer
from poselive.tracking import Tracker, TrackerConfig


@dataclass(frozen=True)
class PipelineConfig:
    """detect_every: run the detector at least every N frames (new people appear, tracks need its evidence);
    det_threshold: the person-centre score a detection needs to start a track; confirm_threshold: to back one;
    min_person_score: drop a person whose confident joints average
    below this; duplicate_iou, same_pose_oks: when two people found are one (see poselive.duplicates);
    smoothing: One Euro on keypoints; keep_heatmaps: keep each crop's heatmaps in the result (for the
    heatmap overlay)."""
    # Every 4th frame: tracks live on the detector's evidence, and it is what finds people entering. vtest.avi
    # frames 0-397 against the MOT ground truth (MOTA / IDF1), every 8: 64.2 / 58.4, 6: 67.0 / 69.8, 4: 69.3 /
    # 66.8, 3: 67.1 / 64.3, 2: 68.3 / 70.4, 1: more phantoms (every 1 before the box floor: 58.3 / 65.0); a
    # vtest_short frame costs about 1.1x that of every 8, and 1.5x at every 2 (median frame time, one run timing
    # all three, 2026-12-03). IDF1 on ~19 people swings by a few points either way: 4 is the cost-aware middle.
    detect_every: int = 4
    # A new person needs a detection scoring det_threshold and joints averaging min_new_score (the tracker's): the
    # pair with the highest recall at OKS 0.5 (0.703, precision 0.718) among those that report somebody on at
    # most 1% of the held-out photos of nobody (0.9%), one pass a crop as here (`poselive eval --task
    # thresholds --modes live`, body-det-3 and body-lite trained on hard negatives, 2026-12-03). 1%, not the 2%
    # still photos allow: a camera looks at the same empty room for hours.
    det_threshold: float = 0.25
    # Detections down to this score back tracks already running (poselive.tracking: confirm); only those scoring
    # det_threshold start new ones (as in ByteTrack: a person already followed needs less evidence to stay).
    confirm_threshold: float = 0.2
    # Still photos also run the detector at half its letterbox side, for people too large for the main pass
    # (`PersonDetector`). Video leaves it off: its extra boxes start tracks of their own (`poselive track`,
    # 2026-11-30: the close-up clip 6 -> 12 ids, openpose_video 57 -> 64, vtest.avi 145 -> 227).
    det_half_pass: bool = False
    # A person is reported in a frame only when their joints average what a new person needs (the tracker's
    # min_new_score): on the live precision/recall table (det 0.25) person thresholds 0.3 to 0.45 keep the same
    # validation people (recall 0.703) and 0.5 loses one, so 0.45 costs no real person there. 0.25 kept
    # low-scored crops such as a traffic cone a walker's track slid onto behind a sign (median 0.34 against 0.71
    # for walkers, vtest.avi) and skeletons drawn on a close-up face (the close-up clip, frames 20 and 36).
    # vtest.avi frames 0-397, median of six runs (`eval --task track --repeats 5`): MOTA / IDF1 70.4 / 64.1 at 0.25,
    # 76.9 / 75.3 at 0.45 (measured after the choice; 0.35: 74.9 / 69.5, 0.4: 76.6 / 71.4).
    min_person_score: float = 0.45
    duplicate_iou: float = DUPLICATE_IOU
    same_pose_oks: float = SAME_POSE_OKS
    smoothing: bool = True
    smoother: SmootherConfig = field(default_factory=SmootherConfig)
    # Lost tracks wait 30 frames for the detector to find them again. A track is reported from
    # its third match on (min_hits), once the detector has backed it; one the detector has not backed for 24
    # frames (six of its runs) ends, whatever its own crops say (TrackerConfig.max_unconfirmed).
    tracker: TrackerConfig = field(default_factory=lambda: TrackerConfig(
        min_new_score=0.45, max_lost=30, min_hits=3, max_unconfirmed=24))
    keep_heatmaps: bool = False


@dataclass(frozen=True, eq=False)
class FrameResult:
    frame: Frame
    people: list[Person]
    faces: list[Face]
    times: StageTimes
    heatmaps: list[CropHeatmaps] = field(default_factory=list)
    detected: bool = False


def claimed(detections_xywh: np.ndarray, crops_xywh: np.ndarray, min_iou: float = 0.3) -> np.ndarray:
    """(M,) bool: the detections a tracked crop already stands for. Each crop stands for one detection at most
    (the one it overlaps best, IoU >= min_iou, assigned jointly): two people walking side by side overlap one
    crop, and the second is somebody new, not a part of the first."""
    taken = np.zeros(len(detections_xywh), bool)
    taken[[i for i, _ in match_boxes(detections_xywh, crops_xywh, min_iou)]] = True
    return taken


class Pipeline:
    """Bodies (and, with a face estimator, faces) frame after frame, with stable ids.

        pipe = Pipeline(PoseEstimator("body-lite"))
        for frame in source:
            result = pipe(frame)
    """

    def __init__(self, estimator: PoseEstimator, config: PipelineConfig = PipelineConfig(), face_stage=None,
                 bodies: bool = True):
        """face_stage: callable (image, people, frame_index) -> list[Face], with reset(); bodies=False keeps
        the body network running (faces are found from heads) but reports no people."""
        self.estimator = estimator
        self.bodies = bodies
        self.config = config
        self.tracker = Tracker(config.tracker)
        self.smoother = PoseSmoother(config.smoother)
        self.face_stage = face_stage
        self._last_detect = -10**9
        self._last_index = -1

    def reconfigure(self, config: PipelineConfig) -> None:
        """New settings from the next frame on (call between frames, from the thread that runs the pipeline).
        A new smoother starts fresh (its first sample per track passes through, so the change shows no jump);
        a new tracker setting starts a new tracker (ids begin again)."""
        if config.smoother != self.config.smoother:
            self.smoother = PoseSmoother(config.smoother)
            if getattr(self.face_stage, "smoother", None) is not None:
                self.face_stage.smoother = PoseSmoother(config.smoother)
        if config.tracker != self.config.tracker:
            self.tracker = Tracker(config.tracker)
        self.config = config

    def reset(self) -> None:
        self.tracker.reset()
        self.smoother.reset()
        self._last_detect = -10**9
        self._last_index = -1
        if self.face_stage is not None:
            self.face_stage.reset()

    def _boxes(self, image: np.ndarray, index: int, timer: StageTimer) -> tuple[np.ndarray, np.ndarray | None]:
        """Crop boxes for this frame: where tracked people are expected, plus new detections (those scoring
        det_threshold or more that overlap no tracked crop). Also returns this frame's detections (M, 5) down to
        confirm_threshold, the evidence that keeps tracks alive, or None on a frame without detection."""
        tracked = self.tracker.predicted_boxes(index, from_keypoints=True, padding=0.08)
        # A lost track carried off the frame at its last velocity has nothing left to find there.
        h, w = image.shape[:2]
        ids = np.array(list(tracked), np.int64)
        boxes = np.array(list(tracked.values()), np.float64).reshape(-1, 4)
        inside = box_intersection(boxes, [(0, 0, w, h)])[:, 0] >= 0.3 * boxes[:, 2] * boxes[:, 3]
        ids, boxes = ids[inside], boxes[inside]
        if len(boxes) > 1:
            # Tracks that converged on one body (a lost track drifting onto someone else's) need one crop, not
            # one each: the most recently matched track's crop stands for the others.
            lost = self.tracker.lost_frames()
            fresh = np.array([-lost[t] for t in ids], np.float64)
            boxes = nms(np.c_[boxes, fresh], 0.7)[:, :4]
        det = None
        if len(boxes) == 0 or index - self._last_detect >= self.config.detect_every:
            cfg = self.config
            with timer.stage("detect"):
                det = self.estimator.detect(image, min(cfg.det_threshold, cfg.confirm_threshold), cfg.det_half_pass)
            self._last_detect = index
            strong = det[det[:, 4] >= cfg.det_threshold]
            if len(strong):
                # Keep tracked crops (they follow the body closely); add detections that are nobody's yet.
                boxes = np.concatenate([boxes, strong[~claimed(strong[:, :4], boxes), :4]])
        return boxes, det

    def __call__(self, frame: Frame) -> FrameResult:
        timer = StageTimer()
        image = check_image(frame.image)
        if frame.index < self._last_index:  # the source restarted: no track, crop or detection carries over
            self.reset()
        self._last_index = frame.index
        boxes, detections = self._boxes(image, frame.index, timer)
        km = self.estimator.keypoints
        crops = km.estimate_crops(image, boxes, timer=timer)
        kps = crops.keypoints
        with timer.stage("decode"):
            people, keep = [], []
            for i in range(len(boxes)):
                s = person_score(kps[i])
                if s < self.config.min_person_score:
                    continue
                # The person's box: around its confident joints, else the crop box it came from.
                box = body_box(kps[i]) or tuple(float(v) for v in boxes[i])
                people.append(Person(kps[i], box, s))
                keep.append(i)
            picked = distinct_people(people, self.config.duplicate_iou, self.config.same_pose_oks)
            people, keep = [people[i] for i in picked], [keep[i] for i in picked]
        with timer.stage("track"):
            people = self.tracker.update(people, frame.index)
            if detections is not None:
                self.tracker.confirm(detections, frame.index)
            confirmed = self.tracker.confirmed_ids()
            tracked = [i for i, p in enumerate(people) if p.track_id in confirmed]
            people, keep = [people[i] for i in tracked], [keep[i] for i in tracked]
        if self.config.smoothing:
            with timer.stage("smooth"):
                people = self.smoother(people, frame.video_time)
        faces = []
        if self.face_stage is not None:
            with timer.stage("face"):
                faces = self.face_stage(image, people, frame.index, frame.video_time)
        if not self.bodies:
            people = []
        heatmaps = []
        if self.config.keep_heatmaps:
            heatmaps = [CropHeatmaps(crops.heatmaps[i], image_to_heatmap_matrix(crops.matrices[i], km.codec.stride))
                        for i in keep]
        return FrameResult(frame, people, faces, StageTimes(timer.ms), heatmaps, detections is not None)

