"""Faces: 68 landmarks and head pose. `FaceEstimator` is the public API for images; `FaceStage` is the
pipeline's face step for video (faces from bodies' heads, from last frame's landmarks, or a face detector).

    faces = FaceEstimator("face-lite")(image_bgr)                   # Haar detection, then landmarks + pose
    faces = FaceEstimator("face-lite")(image_bgr, boxes=[[x, y, w, h]])
"""
from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np

from poselive.boxes import box_iou, nms
from poselive.estimator import KeypointModel, check_boxes, check_image
from poselive.face_detect import FaceDetectorUnavailable, detect_faces_haar, face_box_from_body, face_box_from_landmarks
from poselive.filters import PoseSmoother, SmootherConfig
from poselive.headpose import fit_head_pose
from poselive.records import Face, Person
from poselive.schemas import FACE68
from poselive.tracking import Tracker, TrackerConfig

log = logging.getLogger(__name__)


class FaceEstimator:
    """model: shipped weights name ("face-lite") or .pt path; device: auto, cuda, onnx, cpu; fit_pose: fit the
    3D mean face for yaw/pitch/roll (solvePnP, about 0.2 ms a face); refine_pose: then refit robustly, with
    the landmark scores as weights and the face's width free (headpose.fit_head_pose; about 3 ms more, so off
    by default: with it a face no longer fits the 5 ms live budget on a 2-core CPU); flip_test: average each
    crop's heatmaps with its mirror's, 68-point left/right swapped (twice the network time: on for still
    photos, off in the live FaceStage)."""

    def __init__(self, model: str | os.PathLike = "face-lite", device: str = "auto", fit_pose: bool = True,
                 refine_pose: bool = False, flip_test: bool = True):
        self.landmarks = KeypointModel(model, device, expect_schema=FACE68.name)
        self.fit_pose = fit_pose
        self.refine_pose = refine_pose
        self.flip_test = flip_test

    def detect(self, image: np.ndarray, region=None, min_size_px: int = 40) -> list[tuple[float, float, float, float]]:
        """Face boxes by OpenCV's Haar cascade (frontal faces), largest first; [] when it is unavailable.
        region: (x, y, w, h) image px to search in; None: the whole image. min_size_px: the smallest face side
        looked for (Haar's own square, px)."""
        try:
            return detect_faces_haar(check_image(image), min_size_px=min_size_px, region=region)
        except FaceDetectorUnavailable as e:
            log.warning("%s", e)
            return []

    def __call__(self, image: np.ndarray, boxes=None) -> list[Face]:
        """Faces in the given boxes, or in the boxes the Haar detector finds (then reframed: see estimate)."""
        image = check_image(image)
        if boxes is None:
            return self.estimate(image, np.asarray(self.detect(image), np.float64).reshape(-1, 4), reframe=True)
        return self.estimate(image, check_boxes(boxes, (image.shape[1], image.shape[0])))

    def estimate(self, image: np.ndarray, boxes_xywh: np.ndarray, reframe: bool = False) -> list[Face]:
        """One Face per face box (x, y, w, h image px; see face_detect for the box convention), in order.

        reframe: look again, cut around the face box of the landmarks found first (twice the network time). A
        detector frames a face otherwise than the landmark box training crops were cut around; the second
        look sees it framed as in training, as the live stage does from one frame to the next. On the
        held-out 300-W faces with Haar boxes it took face-lite (2026-11-25) from 6.79% NME to 6.40%; on
        boxes already cut around the landmarks it does not help (6.05% -> 6.14%)."""
        if len(boxes_xywh) == 0:
            return []
        if reframe:
            first = self.landmarks.estimate(image, boxes_xywh, flip=self.flip_test)
            boxes_xywh = np.array([face_box_from_landmarks(lm) for lm in first], np.float64)
        lms = self.landmarks.estimate(image, boxes_xywh, flip=self.flip_test)
        h, w = image.shape[:2]
        faces = []
        for i, b in enumerate(boxes_xywh):
            lm = lms[i]
            pose = fit_head_pose(lm, (w, h), refine=self.refine_pose, point_scores=lm[:, 2]) if self.fit_pose else None
            head_pose, rvec, tvec = pose if pose is not None else (None, None, None)
            faces.append(Face(lm, tuple(float(v) for v in b), float(lm[:, 2].mean()), head_pose, rvec, tvec))
        return faces


# The mean landmark score a face needs in video (FaceStage). face-lite is trained with non-face crops whose
# target is empty (train.face_data.Negatives), so its score says "a face": on the 139 held-out faces every face
# scores >= 0.74, and of the 556 crops a face's width beside them 2.5% score >= 0.5 (3.6% >= 0.3). In video,
# faces turned away or framed from a body's head score lower, yet on the close-up clip a gate of 0.5 kept a face
# in as many frames as 0.3 did (209 of 275, 2026-12-03). (Before the negatives, 55% of the beside-crops scored
# >= 0.5, and faces multiplied on hair, hands and background.) `poselive eval --task face` reports the shares.
FACE_MIN_SCORE = 0.5


class FaceStage:
    """Faces in a video, frame after frame: boxes from each body's head keypoints, then from the previous
    frame's landmarks for faces whose body was not found, then from the Haar detector. A face must be met by a
    head or Haar box every `confirm_within` frames. Tracked ids and One Euro smoothing as for bodies.

    The Haar cascade over a whole frame costs 15-60 face-network runs (60-150 ms at 640x360 on 2 cores), so it
    runs over the whole frame only every `detect_every` frames while no face and no body's head is known, and
    every `scan_every` frames while some are (for someone who steps up to the camera without a body in view).
    Between those, every `detect_every` frames, it looks only around the known faces no body's head meets, to
    confirm them: a region twice a face's side, a few ms. The price: while one face is known, a second face with no body
    in view is found up to `scan_every` frames later (on the close-up clip, at frame 230 instead of 220). The
    whole-frame pass looks only for faces at least `scan_min_face` of the frame's shorter side. A frame with
    no head, no known face and no Haar pass runs no landmark network at all.

    A body's head whose face scored below `min_score` (turned away, hidden, or no face at all) is looked at
    again only every `faceless_every` frames while it stays where it was: on the close-up clip a quarter of
    the face network's crops (78 of 313) went to such heads, frame after frame. The price: a face turning
    towards the camera shows up to `faceless_every - 1` frames later."""

    def __init__(self, model: str | os.PathLike = "face-lite", device: str = "auto", detect_every: int = 10,
                 min_score: float = FACE_MIN_SCORE, smoothing: bool = True, confirm_within: int = 30,
                 scan_every: int = 30, scan_min_face: float = 1 / 6, faceless_every: int = 4):
        """confirm_within: frames a face may be carried by its own landmarks alone before a body's head or a Haar
        box must meet it again, so that a face once found cannot stay on hair or a hand for good (a safeguard:
        face-lite before its non-face training drew a face on whatever it was shown). Keep it at least
        `detect_every`: the Haar look around a face is what confirms a face with no body."""
        self.estimator = FaceEstimator(model, device, flip_test=False)
        self.detect_every = detect_every
        self.scan_every = scan_every
        self.scan_min_face = scan_min_face
        self.faceless_every = faceless_every
        self.min_score = min_score
        self.confirm_within = confirm_within
        self.tracker = Tracker(TrackerConfig(), schema=FACE68)
        self.smoother = PoseSmoother(SmootherConfig()) if smoothing else None
        self._last_faces: list[Face] = []
        self._last_detect = -10**9
        self._last_scan = -10**9
        self._confirmed: dict[int, int] = {}  # track id -> last frame a body's head or Haar box met it
        self._faceless: list[tuple[tuple, int]] = []  # (head box, frame) looked at and no face found there

    def reset(self) -> None:
        self.tracker.reset()
        if self.smoother is not None:
            self.smoother.reset()
        self._last_faces = []
        self._last_detect = -10**9
        self._last_scan = -10**9
        self._confirmed = {}
        self._faceless = []

    def boxes(self, image: np.ndarray, people: list[Person], frame_index: int
              ) -> tuple[np.ndarray, np.ndarray, int]:
        """(boxes to look at, the independent ones among them: from bodies' heads and the Haar detector, and how
        many of the first boxes are bodies' heads)."""
        heads = [b for p in people if (b := face_box_from_body(p.keypoints)) is not None]
        self._faceless = [(b, f) for b, f in self._faceless if frame_index - f < self.faceless_every]
        skip = (box_iou(np.array(heads), np.array([b for b, _ in self._faceless])).max(1) >= 0.3
                if heads and self._faceless else np.zeros(len(heads), bool))
        looked = [h for h, s in zip(heads, skip) if not s]
        haar = []
        if frame_index - self._last_detect >= self.detect_every:
            self._last_detect = frame_index
            # A body's head is looked at every frame (every faceless_every while it shows no face), so while there
            # is one (its face turned away, say) the whole frame is searched as rarely as while a face is known:
            # only for a face with no body.
            if not (self._last_faces or heads) or frame_index - self._last_scan >= self.scan_every:
                # The whole frame, even while faces are known: someone may have stepped up to the camera.
                self._last_scan = frame_index
                haar = list(self.estimator.detect(image, min_size_px=self._scan_min_face(image))[:4])
            else:
                haar = self._haar_near_known_faces(image, heads)
        boxes = list(looked)

        def add_if_new(candidates) -> None:
            for b in candidates:
                if not boxes or box_iou(np.array([b]), np.array(boxes)).max() < 0.3:
                    boxes.append(b)

        add_if_new(face_box_from_landmarks(f.landmarks) for f in self._last_faces)
        add_if_new(haar)
        return (np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(heads + haar, np.float64).reshape(-1, 4),
                len(looked))

    def _scan_min_face(self, image: np.ndarray) -> int:
        """The smallest face side (px) the whole-frame Haar pass looks for: `scan_min_face` of the frame's
        shorter side, at least 40 px. The cascade's cost grows as the inverse square of it (a 640x360 frame:
        119 ms from 40 px, 61 ms from 60 px, 2026-12-03); smaller faces of people whose body is in view
        still come from their heads, every frame. The price, on the close-up clip: a 46 px face with no body
        found yet is first seen at frame 2 (from a head) instead of frame 0; over the clip a face is kept
        in 209 of 275 frames against 211 with a 40 px smallest face (face-lite of 2026-12-03)."""
        return max(40, int(self.scan_min_face * min(image.shape[:2])))

    def _haar_near_known_faces(self, image: np.ndarray, heads: list) -> list:
        """Haar boxes in a region twice the side of each of last frame's faces that no body's head meets."""
        found = []
        for f in self._last_faces:
            if heads and box_iou(np.array([f.bbox]), np.array(heads)).max() > 0.3:
                continue  # a body's head confirms this one
            x, y, w, h = f.bbox
            found += self.estimator.detect(image, region=(x - w / 2, y - h / 2, 2 * w, 2 * h))[:1]
        return found

    def __call__(self, image: np.ndarray, people: list[Person], frame_index: int, time_s: float | None = None
                 ) -> list[Face]:
        boxes, independent, n_heads = self.boxes(image, people, frame_index)
        # No box, no landmark work: estimate() returns [] without cropping or running the network.
        faces = self.estimator.estimate(image, boxes)
        self._faceless += [(tuple(b), frame_index) for b, f in zip(boxes[:n_heads], faces)
                           if f.score < self.min_score]
        # In video a face is where its landmarks are: the box it was cut from (a body's head, last frame's
        # landmarks, a Haar box) differs in size from frame to frame, and tracking by it broke the id whenever
        # the source of the box changed.
        faces = [dataclasses.replace(f, bbox=face_box_from_landmarks(f.landmarks)) for f in faces
                 if f.score >= self.min_score]
        if len(faces) > 1:
            # Two boxes (a body's head and last frame's landmarks) can land on one face: keep the surer one.
            rows = np.array([[*f.bbox, f.score, i] for i, f in enumerate(faces)])
            faces = [faces[int(i)] for i in sorted(nms(rows, 0.5)[:, 5])]
        faces = self.tracker.update(faces, frame_index)
        faces = self._confirmed_only(faces, independent, frame_index)
        if self.smoother is not None and time_s is not None:
            faces = self.smoother(faces, time_s)
        self._last_faces = faces
        return faces

    def _confirmed_only(self, faces: list[Face], independent: np.ndarray, frame_index: int) -> list[Face]:
        """Drop faces no body's head or Haar box has met within confirm_within frames (see __init__)."""
        met = (box_iou(np.array([f.bbox for f in faces]), independent).max(1) > 0.3
               if faces and len(independent) else np.zeros(len(faces), bool))
        kept = []
        for face, ok in zip(faces, met):
            if ok or face.track_id not in self._confirmed:
                self._confirmed[face.track_id] = frame_index
            if frame_index - self._confirmed[face.track_id] <= self.confirm_within:
                kept.append(face)
        live = {f.track_id for f in faces}
        self._confirmed = {t: f for t, f in self._confirmed.items() if t in live or frame_index - f <= self.confirm_within}
        return kept
