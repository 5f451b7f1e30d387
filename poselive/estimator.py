"""The public API: `PoseEstimator` (bodies) composed from the stages below it.

    from poselive import PoseEstimator
    people = PoseEstimator("body-lite", device="auto")(image_bgr)            # detect, then keypoints
    people = PoseEstimator("body-lite")(image_bgr, boxes=[[x, y, w, h], ...])  # one person per given box

image -> [detector] -> boxes -> keypoints in each box (keypoint_model) -> Person records in original image px.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from poselive.duplicates import distinct_people
from poselive.errors import InputError, InputTypeError
from poselive.keypoint_model import KeypointModel
from poselive.records import Person
from poselive.weights import DEFAULT_DETECTOR, STILL_MODEL, resolve_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CropHeatmaps:
    """The network's view of one person, for the heatmap overlay: heatmaps (K, h, w) float32 and the 2x3
    affine mapping image px -> heatmap px."""
    heatmaps: np.ndarray
    image_to_heatmap: np.ndarray


def check_image(image: np.ndarray) -> np.ndarray:
    """An image as the networks take it: (H, W, 3) uint8 BGR, C-contiguous.

    Accepts uint8 BGR (H, W, 3), BGRA (H, W, 4) or grey ((H, W) or (H, W, 1)), and uint16 of the same shapes,
    scaled to 0..255. Anything else raises InputTypeError (not an array, another dtype: a float, signed or
    bool image would otherwise be clipped to a black picture) or InputError (an empty image, another shape)."""
    if not isinstance(image, np.ndarray):
        raise InputTypeError(f"expected an image as a numpy array (H, W, 3) uint8 BGR, got {type(image).__name__}")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        hint = ("; a float image in 0..1 converts with (image * 255).round().astype(np.uint8)"
                if image.dtype.kind == "f" else "")
        raise InputTypeError(f"expected a uint8 image (BGR or grey), got dtype {image.dtype}{hint}")
    channels = 1 if image.ndim == 2 else image.shape[2] if image.ndim == 3 else 0
    if channels not in (1, 3, 4):
        raise InputError(f"expected an image of shape (H, W) grey, (H, W, 3) BGR or (H, W, 4) BGRA, "
                         f"got shape {image.shape}")
    if image.size == 0:
        raise InputError(f"the image is empty (shape {image.shape})")
    if channels == 1:
        image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    elif channels == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


def check_boxes(boxes, image_wh: tuple[int, int] | None = None, where: str = "") -> np.ndarray:
    """Person or face boxes given by a caller -> (M, 4) float64 x, y, w, h in image px.

    A box that is not finite, or has no area (w or h <= 0), raises InputError naming it (`where` prefixes the
    message, e.g. the file it came from); a box wholly outside the image (W, H) only logs a warning: it is
    looked at, and its keypoints will score near 0."""
    try:
        arr = np.asarray(boxes, np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where}boxes must be a list of [x, y, w, h] numbers") from None
    if not (arr.ndim == 2 and arr.shape[1] == 4 or arr.shape == (4,) or arr.size == 0):
        raise InputError(f"{where}boxes must be a list of [x, y, w, h], got shape {arr.shape}")
    arr = arr.reshape(-1, 4)
    for i, box in enumerate(arr):
        shown = "[" + ", ".join(f"{v:g}" for v in box) + "]"
        if not np.isfinite(box).all():
            raise InputError(f"{where}box {i} {shown} is not a finite number; give [x, y, w, h] in image px")
        if box[2] <= 0 or box[3] <= 0:
            raise InputError(f"{where}box {i} {shown} has no area: its width and height must be above 0")
        if image_wh is not None:
            w, h = image_wh
            if box[0] >= w or box[1] >= h or box[0] + box[2] <= 0 or box[1] + box[3] <= 0:
                log.warning("%sbox %d %s lies outside the %dx%d image; its keypoints will score near 0",
                            where, i, shown, w, h)
    return arr


def person_score(kps: np.ndarray, min_score: float = 0.2) -> float:
    """Mean score of the keypoints the network is fairly sure of (0 if none): a person whose joints are all
    faint is probably not a person."""
    s = kps[:, 2]
    good = s[s >= min_score]
    return float(good.mean()) if good.size else 0.0


def box_from_keypoints(kps: np.ndarray, min_score: float = 0.2, margin: float = 0.15, min_size: float = 4.0):
    """Tight box (x, y, w, h) around confident keypoints (each side at least `min_size` px), grown by `margin`
    x its size per side; None if fewer than 3 keypoints score >= min_score."""
    pts = kps[kps[:, 2] >= min_score, :2]
    if len(pts) < 3:
        return None
    lo, hi = pts.min(0), pts.max(0)
    wh = np.maximum(hi - lo, min_size)
    lo, wh = lo - margin * wh, wh * (1 + 2 * margin)
    return (float(lo[0]), float(lo[1]), float(wh[0]), float(wh[1]))


# The narrowest an upright person's box gets, as a share of the joints' height: 0.3 is the widest floor that
# costs nothing on 1,883 labelled people standing full length (the sets above plus vikram_people, exercise,
# dance and ccp_fashion; mean IoU with their boxes 0.8196 at 0.3, 0.8195 without, 0.8187 at 0.33), and it helps
# the narrowest of them, side-on people whose joints line up (0.786 -> 0.787).
MIN_BOX_ASPECT = 0.3


def body_box(kps: np.ndarray, min_score: float = 0.2, min_size: float = 2.0):
    """The person's outline box (x, y, w, h) from their confident keypoints, None if fewer than 3 score >=
    min_score. Joints lie inside the body: on hand-labelled full-body people (fashion_a, fashion_b, pelota,
    coco_mini; 1,380 people with 15+ joints) the annotated box reached past the joints' span by a median 0.03-0.06
    of its height on each side and 0.08-0.11 of it above and below; so each side grows by the larger of 0.1 x
    the span's width and 0.05 x its height, and top and bottom by 0.1 x its height. A box around the joints
    alone is narrower than the person (a walker's arms hang inside his outline). Seen side-on, a walker's joints
    stack into a column a few px wide: the box is then at least MIN_BOX_ASPECT x the joints' height wide."""
    pts = kps[kps[:, 2] >= min_score, :2]
    if len(pts) < 3:
        return None
    lo, hi = pts.min(0), pts.max(0)
    w, h = np.maximum(hi - lo, min_size)
    px, py = max(0.1 * w, 0.05 * h, (MIN_BOX_ASPECT * h - w) / 2), 0.1 * h
    return (float(lo[0] - px), float(lo[1] - py), float(w + 2 * px), float(h + 2 * py))


class PoseEstimator:
    """Bodies (COCO-17) in an image. See the module docstring.

    model: name of shipped weights (STILL_MODEL, "body-lite") or a .pt path; detector: the person detector's weights
    (DEFAULT_DETECTOR), used when no boxes are given; device: auto, cuda, onnx, cpu; det_size: letterbox side for
    detection (larger finds smaller people); det_threshold: the person-centre score a detection needs; threads:
    ONNX Runtime threads per network (None: one per core; 1 where several processes share the cores, as Ray
    workers do); min_person_score: a person the detector found is returned only when its confident joints
    average this much (people in given boxes always are); refine: see `find`; flip_test: average each crop's
    heatmaps with its mirror image's (`KeypointModel.estimate_crops`): on our validation split (GT boxes, body-lite step
    8,682) OKS AP 0.387 -> 0.403, PCK@0.2 0.906 -> 0.913, recall at OKS 0.5 0.717 -> 0.703, for twice the
    network time. The live pipeline runs the network itself, without. det_tiles: the detector also looks at the
    image's four corner tiles (`PersonDetector`), for small people; it always looks at the whole image twice, at
    `det_size` and half of it, for large ones.

    Why 0.25 and 0.4: the precision/recall table of `poselive eval --task thresholds --modes predict --model
    body-lite-160` (our validation split's 290 people, and the 352 held-out photos of nobody in
    negatives/scene15; body-det-3 and body-lite-160 trained on hard negatives, 2026-12-03): among the pairs that
    report somebody on at most 1.5% of the held-out empty photos, the highest recall at OKS 0.5 is 0.731 (0.2 and
    0.4, precision 0.648); 0.25 and 0.4 find one person fewer (0.728) at precision 0.740 and 0.9% of the empty
    photos, and we take that precision. 1.5%, not the 2% bar: a pair at 2.0% of the held-out photos once
    reported people on 2.3% of all 1,758."""

    def __init__(self, model: str | os.PathLike = STILL_MODEL, device: str = "auto",
                 detector: str | os.PathLike = DEFAULT_DETECTOR, det_size: int = 256, det_threshold: float = 0.25,
                 threads: int | None = None, min_person_score: float = 0.4, refine: bool = True,
                 flip_test: bool = True, det_tiles: bool = False):
        self.keypoints = KeypointModel(model, device, expect_schema="coco17", threads=threads)
        self.min_person_score = min_person_score
        self.refine = refine
        self.flip_test = flip_test
        self._detector_spec = (detector, device, det_size, det_threshold, threads, det_tiles)
        self._detector = None

    @property
    def detector(self):
        if self._detector is None:  # loaded on first use: box-driven callers never pay for it
            from poselive.backends import make_backend
            from poselive.detector import PersonDetector
            weights, device, size, thr, threads, tiles = self._detector_spec
            backend = make_backend(resolve_weights(weights), device, threads=threads)
            self._detector = PersonDetector(backend, size, thr, tiles=tiles)
        return self._detector

    def detect(self, image: np.ndarray, threshold: float | None = None, half_pass: bool | None = None
               ) -> np.ndarray:
        """Person boxes (M, 5): x, y, w, h, score in image px. threshold: None for det_threshold; half_pass:
        None for the detector's own (on: see `PersonDetector`)."""
        return self.detector(check_image(image), threshold, half_pass)

    def __call__(self, image: np.ndarray, boxes=None) -> list[Person]:
        image = check_image(image)
        if boxes is not None:
            return self.estimate(image, check_boxes(boxes, (image.shape[1], image.shape[0])))
        return self.find(image, self.detect(image)[:, :4])

    def find(self, image: np.ndarray, detections_xywh: np.ndarray) -> list[Person]:
        """People from detector boxes: keypoints in each box; with `refine`, once more in the box their confident
        joints span (a detector box is often too small, too big or off-centre), keeping the better-scored of the
        two; then people whose boxes overlap at IoU > 0.6 merged (poselive.duplicates) and faint people dropped
        (min_person_score).

        Measured 2026-11-25 with body-lite step 6,000 and body-det step 4,500 at detector threshold 0.1 (runs of
        `poselive eval --detections`):
        refining took recall at OKS 0.5 from 0.686 to 0.693 on our validation split (290 people) and from 0.174
        to 0.198 on coco_mini; merging took validation OKS AP from 0.322 to 0.355 at the same recall. It costs a
        second keypoint pass per detection."""
        return self.pick(self.candidates(image, detections_xywh))

    def candidates(self, image: np.ndarray, detections_xywh: np.ndarray) -> list[Person]:
        """One Person per detector box, in order, refined (see `find`), before duplicates and faint people go."""
        people = self.estimate(image, detections_xywh)
        if self.refine and people:
            refined = self.estimate(image, np.array([box_from_keypoints(p.keypoints, 0.3, 0.1) or p.bbox
                                                     for p in people], np.float64))
            people = [b if b.score > a.score else a for a, b in zip(people, refined)]
        return people

    def pick(self, people: list[Person], min_person_score: float | None = None) -> list[Person]:
        """The people `find` reports among candidates: duplicates merged, then those scoring min_person_score
        (None: the estimator's own) or more."""
        thr = self.min_person_score if min_person_score is None else min_person_score
        people = [people[i] for i in distinct_people(people, nested=False)]
        return [p for p in people if p.score >= thr]

    def estimate(self, image: np.ndarray, boxes_xywh: np.ndarray) -> list[Person]:
        """One Person per box, in order. Person.score is the mean score of its confident joints (the detector's
        own confidence only decides whether a box is looked at)."""
        kps = self.keypoints.estimate(image, boxes_xywh, flip=self.flip_test)
        return [Person(kps[i], tuple(float(v) for v in b), person_score(kps[i])) for i, b in enumerate(boxes_xywh)]
