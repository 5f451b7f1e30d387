"""Face landmarks by a cascade of regression trees (Kazemi & Sullivan, "One millisecond face alignment with an
ensemble of regression trees", CVPR 2014: the method of dlib's 68-point predictor). face-full's second look.

The shape lives in box units: (0, 0) is the top-left corner of the square the trees look through (a FaceFrame),
(1, 1) its bottom-right one. It starts as the mean training shape; each of the C cascade stages reads F grey pixels placed relative to the current
shape (each pixel is an offset from one landmark, its anchor, turned and scaled with the shape), runs T depth-D
trees whose splits compare two of those pixels with a threshold, and adds the T leaves it lands in to the
shape. No floating point work but a 2x2 similarity fit per stage and the leaves' sums: 0.3 ms a face compiled.

The trees are trained by dlib (`poselive.train.face_trees`); this file is all that runs them, so the runtime
does not need dlib. Leaves are stored as int8 with one scale per tree (a quarter of float32, and the rounding
moves landmarks by less than 0.1% of the box).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from poselive.errors import WeightsError
from poselive.face_detect import face_box_from_landmarks

log = logging.getLogger(__name__)

_compiled = None
if not os.environ.get("POSELIVE_PURE_PYTHON"):
    try:
        from poselive import _trees as _compiled  # type: ignore[attr-defined]
    except ImportError:  # not built: the numpy twin runs the trees (1.2 ms a face instead of 0.3)
        log.warning("poselive: compiled face trees not found, using the numpy reference (slower); "
                    "build them with `pip install -e .`")

FORMAT = "poselive-face-trees-1"
# What the compiled cascade takes; a file written otherwise is cast on loading.
_DTYPES = {"mean_shape": np.float32, "anchors": np.int16, "offsets": np.float32, "split_a": np.int16,
           "split_b": np.int16, "thresholds": np.float32, "leaves": np.int8, "leaf_scale": np.float32}


@dataclass(frozen=True)
class TreeCascade:
    """A trained cascade. C stages, F pixels a stage, T trees a stage, S = 2^D - 1 splits and L = 2^D leaves
    a tree, K landmarks.

    mean_shape (K, 2) float32 box units; anchors (C, F) int16 landmark index; offsets (C, F, 2) float32 box
    units from the anchor in the mean shape; split_a, split_b (C, T, S) int16 pixel indices; thresholds
    (C, T, S) float32 grey levels (a split goes to its left child when pixel a - pixel b > threshold; node i's
    children are 2i+1 and 2i+2); leaves (C, T, L, 2K) int8, times leaf_scale (C, T) float32 gives box units."""
    mean_shape: np.ndarray
    anchors: np.ndarray
    offsets: np.ndarray
    split_a: np.ndarray
    split_b: np.ndarray
    thresholds: np.ndarray
    leaves: np.ndarray
    leaf_scale: np.ndarray

    @property
    def depth(self) -> int:
        return int(np.log2(self.split_a.shape[2] + 1))

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, format=np.array(FORMAT), **{k: getattr(self, k) for k in self.__dataclass_fields__})

    @classmethod
    def load(cls, path: str | Path) -> "TreeCascade":
        try:
            with np.load(path, allow_pickle=False) as z:
                if "format" not in z or str(z["format"]) != FORMAT:
                    raise WeightsError(f"{path} is not a poselive face-trees file ({FORMAT})")
                cascade = cls(**{k: np.ascontiguousarray(z[k], _DTYPES[k]) for k in cls.__dataclass_fields__})
        except (OSError, ValueError, KeyError) as e:
            raise WeightsError(f"cannot read face-trees weights {path}: {e}") from None
        c, t, s = cascade.split_a.shape
        if cascade.leaves.shape[:3] != (c, t, s + 1) or cascade.leaves.shape[3] != 2 * len(cascade.mean_shape):
            raise WeightsError(f"{path}: leaves of shape {cascade.leaves.shape} do not fit {c} stages of {t} trees "
                               f"with {s} splits and {len(cascade.mean_shape)} landmarks")
        return cascade


def similarity_2x2(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The scale-and-rotation matrix (2, 2) that best maps the centred points src (K, 2) onto centred dst, by
    least squares (as Kazemi & Sullivan place their pixels: translation comes from the anchor landmark)."""
    a = src - src.mean(0)
    b = dst - dst.mean(0)
    den = float((a * a).sum())
    c = float((a * b).sum()) / den
    s = float((a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum()) / den
    return np.array([[c, -s], [s, c]], np.float32)


@dataclass(frozen=True)
class FaceFrame:
    """Where the cascade looks: a square of side `side` image px centred on `centre` (x, y), turned by `angle`
    radians (its x axis along the eye line). Box unit (u, v) lies at centre + side * R(angle) (u - 0.5, v - 0.5)."""
    centre: tuple[float, float]
    side: float
    angle: float = 0.0

    def to_image(self, uv: np.ndarray) -> np.ndarray:
        """Box units (N, 2) -> image px (N, 2)."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        turn = self.side * np.array([[c, -s], [s, c]], np.float32)
        return (uv - 0.5) @ turn.T + np.asarray(self.centre, np.float32)

    @classmethod
    def of_box(cls, box_xywh) -> "FaceFrame":
        x, y, w, h = (float(v) for v in box_xywh)
        return cls((x + w / 2, y + h / 2), max(w, h))


LEFT_EYE = slice(36, 42)   # the 300-W eye contours, image-left and image-right on a frontal face
RIGHT_EYE = slice(42, 48)


def upright_frame(landmarks: np.ndarray) -> FaceFrame:
    """The frame face-full looks through, from landmarks (68, 2+) image px (a first look's, or in training the
    labels'): turned so the line between the eye-contour centres is its x axis, and sized and placed as the face
    box (poselive.face_detect) of the landmarks seen upright. A tilted face thus reaches the trees upright, as
    most training faces are, instead of tilted inside an upright box."""
    xy = np.asarray(landmarks, np.float64)[:, :2]
    eye_line = xy[RIGHT_EYE].mean(0) - xy[LEFT_EYE].mean(0)
    angle = float(np.arctan2(eye_line[1], eye_line[0]))
    c, s = np.cos(angle), np.sin(angle)
    mid = xy.mean(0)
    upright = (xy - mid) @ np.array([[c, -s], [s, c]])      # rows times R(angle) = R(-angle) applied to each
    x, y, w, _ = face_box_from_landmarks(upright)
    centre = mid + np.array([[c, -s], [s, c]]) @ np.array([x + w / 2, y + w / 2])
    return FaceFrame((float(centre[0]), float(centre[1])), float(w), angle)


def predict_landmarks(cascade: TreeCascade, gray: np.ndarray, frame: FaceFrame) -> np.ndarray:
    """Landmarks (K, 2) float32, image px (0-based pixel centres), of the face in `frame` of a grey uint8 image
    (H, W). Pixels outside the image read as 0, as in training. Runs the compiled cascade (cython_ext/_trees.pyx)
    when built, else the numpy twin below."""
    if _compiled is None:
        return predict_landmarks_reference(cascade, gray, frame)
    return _compiled.run_cascade(np.ascontiguousarray(gray, np.uint8), float(frame.centre[0]),
                                 float(frame.centre[1]), float(frame.side), float(frame.angle), cascade.mean_shape,
                                 cascade.anchors, cascade.offsets, cascade.split_a, cascade.split_b,
                                 cascade.thresholds, cascade.leaves, cascade.leaf_scale)


def predict_landmarks_reference(cascade: TreeCascade, gray: np.ndarray, frame: FaceFrame) -> np.ndarray:
    """predict_landmarks in numpy: the definition the compiled cascade follows."""
    height, width = gray.shape
    mean = cascade.mean_shape
    shape = mean.copy()
    n_trees = cascade.split_a.shape[1]
    n_splits = cascade.split_a.shape[2]
    trees = np.arange(n_trees)
    for c in range(len(cascade.anchors)):
        turn = similarity_2x2(mean, shape)
        at = cascade.offsets[c] @ turn.T + shape[cascade.anchors[c]]
        px = np.floor(frame.to_image(at) + 0.5).astype(np.intp)
        inside = (px[:, 0] >= 0) & (px[:, 0] < width) & (px[:, 1] >= 0) & (px[:, 1] < height)
        grey = np.zeros(len(px), np.float32)
        grey[inside] = gray[px[inside, 1], px[inside, 0]]
        node = np.zeros(n_trees, np.intp)
        for _ in range(cascade.depth):
            a = grey[cascade.split_a[c, trees, node]]
            b = grey[cascade.split_b[c, trees, node]]
            node = 2 * node + np.where(a - b > cascade.thresholds[c, trees, node], 1, 2)
        step = cascade.leaf_scale[c] @ cascade.leaves[c, trees, node - n_splits].astype(np.float32)
        shape = shape + step.reshape(-1, 2)
    return frame.to_image(shape)
