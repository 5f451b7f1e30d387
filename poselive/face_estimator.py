"""Faces: 68 landmarks and head pose. `FaceEstimator` is the public API for images; `FaceStage` is the
pipeline's face step for video (faces from bodies' heads, from last frame's landmarks, or a face detector).

    faces = FaceEstimator("face-lite")(image_bgr)                   # Haar detection, then landmarks + pose
    faces = FaceEstimator("face-lite")(image_bgr, boxes=[[x, y, w, h]])
    faces = FaceEstimator("face-lite", refiner=None)(image_bgr)     # face-full's trees, without its patch network
    faces = FaceEstimator("face-lite", shape=None)(image_bgr)       # face-full without its shape model
    faces = FaceEstimator("face-lite", trees=None)(image_bgr)       # the network's landmarks, without face-full
"""
from __future__ import annotations

import dataclasses
import logging
import os

import cv2
import numpy as np

from poselive.boxes import box_iou, nms
from poselive.estimator import KeypointModel, check_boxes, check_image
from poselive.face_detect import FaceDetectorUnavailable, detect_faces_haar, face_box_from_body, face_box_from_landmarks
from poselive.face_refine import PatchRefiner
from poselive.face_shape import ShapeModel, constrain
from poselive.face_trees import TreeCascade, predict_landmarks, upright_frame
from poselive.filters import PoseSmoother, SmootherConfig
from poselive.headpose import fit_head_pose
from poselive.records import Face, Person
from poselive.schemas import FACE68
from poselive.tracking import Tracker, TrackerConfig
from poselive.weights import FACE_REFINE, FACE_SHAPE, FACE_TREES, resolve_weights

log = logging.getLogger(__name__)


class FaceEstimator:
    """model: shipped weights name ("face-lite") or .pt path; device: auto, cuda, onnx, cpu; fit_pose: fit the
    3D mean face for yaw/pitch/roll (solvePnP, about 0.2 ms a face); refine_pose: then refit robustly, with
    the landmark scores as weights and the face's width free (headpose.fit_head_pose; about 3 ms more, so off
    by default: with it a face no longer fits the 5 ms live budget on a 2-core CPU); flip_test: average each
    crop's heatmaps with its mirror's, 68-point left/right swapped (twice the network time: on for still
    photos, off in the live FaceStage; with trees and refiner, the refiner's landmarks are averaged with its
    own on the mirror image instead); trees: face-full's regression trees (a name or an .npz file;
    poselive.face_trees; None: the network's landmarks), which place the landmarks again, starting from the
    network's: the network then only frames the face (upright, around its landmarks) and scores it, so
    its own flip test and `reframe` are not needed with them; refiner: face-full's patch network (a name or an .onnx
    file; poselive.face_refine; None: the trees' landmarks; used only with trees), which moves each landmark the
    trees placed; shape: face-full's shape model (a name or an .npz file; poselive.face_shape; None: the refiner's
    landmarks; used only with the refiner), which then slides the jaw and brow points along their lines."""

    def __init__(self, model: str | os.PathLike = "face-lite", device: str = "auto", fit_pose: bool = True,
                 refine_pose: bool = False, flip_test: bool = True, trees: str | os.PathLike | None = FACE_TREES,
                 refiner: str | os.PathLike | None = FACE_REFINE, shape: str | os.PathLike | None = FACE_SHAPE):
        self.landmarks = KeypointModel(model, device, expect_schema=FACE68.name)
        self.trees = TreeCascade.load(resolve_weights(trees)) if trees else None
        self.refiner = PatchRefiner(resolve_weights(refiner)) if refiner and self.trees is not None else None
        self.shape = ShapeModel.load(resolve_weights(shape)) if shape and self.refiner is not None else None
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
        """Faces in the given boxes (one each), or in the boxes the Haar detector finds (then reframed: see
        estimate), keeping those scoring FACE_MIN_SCORE or more: Haar boxes backgrounds too, and face-lite's score
        tells them apart."""
        image = check_image(image)
        if boxes is None:
            found = self.estimate(image, np.asarray(self.detect(image), np.float64).reshape(-1, 4), reframe=True)
            return [f for f in found if f.score >= FACE_MIN_SCORE]
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
        flip_network = self.flip_test and self.trees is None
        if reframe and self.trees is None:
            first = self.landmarks.estimate(image, boxes_xywh, flip=flip_network)
            boxes_xywh = np.array([face_box_from_landmarks(lm) for lm in first], np.float64)
        lms = self.landmarks.estimate(image, boxes_xywh, flip=flip_network)
        if self.trees is not None:
            lms = self._placed_by_trees(image, lms)
        return self._faces(image, lms, boxes_xywh)

    def follow(self, image: np.ndarray, faces: list[Face]) -> list[Face]:
        """Last frame's faces in this frame by the trees alone, each starting from its own landmarks: no network,
        so each keeps its score (and box; the live stage re-boxes faces by their landmarks). Needs `trees`."""
        if not faces:
            return []
        lms = self._placed_by_trees(image, np.stack([f.landmarks for f in faces]))
        return [dataclasses.replace(f, points=nf.points, head_pose=nf.head_pose, rvec=nf.rvec, tvec=nf.tvec)
                for f, nf in zip(faces, self._faces(image, lms, np.array([f.bbox for f in faces])))]

    def _placed_by_trees(self, image: np.ndarray, lms: np.ndarray) -> np.ndarray:
        """Landmarks (N, 68, 3) placed again by the trees, each from the upright frame of its own, then moved by
        the refiner and the shape model; scores kept."""
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        lms = np.array(lms, np.float32, copy=True)
        for lm in lms:
            lm[:, :2] = predict_landmarks(self.trees, gray, upright_frame(lm))
        if self.refiner is not None and len(lms):
            lms[:, :, :2] = self.refiner.refine(gray, lms, flip=self.flip_test)
            if self.shape is not None:
                for lm in lms:
                    lm[:, :2] = constrain(self.shape, lm)
        return lms

    def _faces(self, image: np.ndarray, lms: np.ndarray, boxes_xywh: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        faces = []
        for lm, b in zip(lms, boxes_xywh):
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

    With face-full's trees (the default), a face the network scored within the last `check_every` frames is
    followed by the trees alone from its last landmarks (0.3 ms), and the network looks at it again every
    `check_every` frames; its landmarks are always the trees'. The price: at a cut in the video a face stays
    up to `check_every - 1` frames on the new shot before the network's look drops it.

    The Haar cascade over a whole frame costs 15-60 face-network runs (60-150 ms at 640x360 on 2 cores), so it
    runs over the whole frame every `detect_every` frames while no face and no body's head is known, twice as
    long after each pass that brings no face, up to `scan_every` frames; and every `scan_every` frames while
    some are (for someone who steps up to the camera without a body in view). (The close-up clip's profile
    close-up, no body found and Haar boxes that are no face, took a 25-35 ms pass every 10 frames for 2 s.)
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
                 scan_every: int = 30, scan_min_face: float = 1 / 6, faceless_every: int = 4,
                 trees: str | os.PathLike | None = FACE_TREES, check_every: int = 4,
                 refiner: str | os.PathLike | None = None):
        """confirm_within: frames a face may be carried by its own landmarks alone before a body's head or a Haar
        box must meet it again, so that a face once found cannot stay on hair or a hand for good (a safeguard:
        face-lite before its non-face training drew a face on whatever it was shown). Keep it at least
        `detect_every`: the Haar look around a face is what confirms a face with no body.
        trees: face-full's regression trees (None: the network alone). With them the trees place every face's
        landmarks, and the network looks at a known face only every `check_every` frames, to score it (is it
        still a face?) and frame it afresh; in between the trees follow it from its last landmarks (0.3 ms
        against the network's 3).
        refiner: face-full's patch network after the trees (FaceEstimator); off by default in video: it costs
        several ms a face every frame, which the live budget (the face stage at most half the body's time) does
        not hold, and photos are where its precision is asked for."""
        self.estimator = FaceEstimator(model, device, flip_test=False, trees=trees, refiner=refiner)
        self.check_every = check_every
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
        self._empty_scans = 0  # whole-frame passes in a row that brought no face
        self._confirmed: dict[int, int] = {}  # track id -> last frame a body's head or Haar box met it
        self._faceless: list[tuple[tuple, int]] = []  # (head box, frame) looked at and no face found there
        self._checked: dict[int, int] = {}  # track id -> last frame the network looked at it

    def reset(self) -> None:
        self.tracker.reset()
        if self.smoother is not None:
            self.smoother.reset()
        self._last_faces = []
        self._last_detect = -10**9
        self._last_scan = -10**9
        self._empty_scans = 0
        self._confirmed = {}
        self._faceless = []
        self._checked = {}

    def boxes(self, image: np.ndarray, people: list[Person], frame_index: int, followed: list[Face] = ()
              ) -> tuple[np.ndarray, np.ndarray, int]:
        """(boxes for the network to look at, the independent ones among all boxes: from bodies' heads and the
        Haar detector, and how many of the first boxes are bodies' heads). `followed`: this frame's faces the
        trees followed; no box on one of them is looked at."""
        heads = [b for p in people if (b := face_box_from_body(p.keypoints)) is not None]
        self._faceless = [(b, f) for b, f in self._faceless if frame_index - f < self.faceless_every]
        skip = (box_iou(np.array(heads), np.array([b for b, _ in self._faceless])).max(1) >= 0.3
                if heads and self._faceless else np.zeros(len(heads), bool))
        taken = [f.bbox for f in followed]
        if heads and taken:
            skip |= box_iou(np.array(heads), np.array(taken)).max(1) >= 0.3
        looked = [h for h, s in zip(heads, skip) if not s]
        haar = []
        if frame_index - self._last_detect >= self.detect_every:
            self._last_detect = frame_index
            # A body's head is looked at every frame (every faceless_every while it shows no face), so while there
            # is one (its face turned away, say) the whole frame is searched as rarely as while a face is known:
            # only for a face with no body.
            nothing_known = not (self._last_faces or heads)
            wait = (min(self.detect_every * 2 ** min(self._empty_scans, 8), self.scan_every) if nothing_known
                    else self.scan_every)
            if frame_index - self._last_scan >= wait:
                # The whole frame, even while faces are known: someone may have stepped up to the camera.
                self._last_scan = frame_index
                haar = list(self.estimator.detect(image, min_size_px=self._scan_min_face(image))[:4])
            else:
                haar = self._haar_near_known_faces(image, heads)
        boxes = list(looked)

        def add_if_new(candidates) -> None:
            for b in candidates:
                if not boxes + taken or box_iou(np.array([b]), np.array(boxes + taken)).max() < 0.3:
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
        followed = self._followed(image, frame_index)
        boxes, independent, n_heads = self.boxes(image, people, frame_index, followed)
        # No box, no landmark work: estimate() returns [] without cropping or running the network.
        looked = self.estimator.estimate(image, boxes)
        self._faceless += [(tuple(b), frame_index) for b, f in zip(boxes[:n_heads], looked)
                           if f.score < self.min_score]
        # In video a face is where its landmarks are: the box it was cut from (a body's head, last frame's
        # landmarks, a Haar box) differs in size from frame to frame, and tracking by it broke the id whenever
        # the source of the box changed.
        looked = [dataclasses.replace(f, bbox=face_box_from_landmarks(f.landmarks)) for f in looked
                  if f.score >= self.min_score]
        faces = followed + looked
        if faces:
            self._empty_scans = 0
        elif self._last_scan == frame_index:
            self._empty_scans += 1
        kept = list(range(len(faces)))
        if len(faces) > 1:
            # Two boxes (a body's head and last frame's landmarks) can land on one face: keep the surer one.
            rows = np.array([[*f.bbox, f.score, i] for i, f in enumerate(faces)])
            kept = [int(i) for i in sorted(nms(rows, 0.5)[:, 5])]
            faces = [faces[i] for i in kept]
        faces = self.tracker.update(faces, frame_index)
        self._checked.update((f.track_id, frame_index) for f, i in zip(faces, kept) if i >= len(followed))
        faces = self._confirmed_only(faces, independent, frame_index)
        if self.smoother is not None and time_s is not None:
            faces = self.smoother(faces, time_s)
        self._last_faces = faces
        return faces

    def _followed(self, image: np.ndarray, frame_index: int) -> list[Face]:
        """Last frame's faces the network looked at within check_every frames, placed in this frame by the trees
        from their last landmarks, boxed by their new landmarks."""
        if self.estimator.trees is None:
            return []
        live = {f.track_id for f in self._last_faces}
        self._checked = {t: f for t, f in self._checked.items() if t in live}
        due = [f for f in self._last_faces if frame_index - self._checked.get(f.track_id, -10**9) < self.check_every]
        return [dataclasses.replace(f, bbox=face_box_from_landmarks(f.landmarks), track_id=-1)
                for f in self.estimator.follow(image, due)]

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
