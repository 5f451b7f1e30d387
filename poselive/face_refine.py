"""face-full's second step: a small network that moves each of the 68 landmarks the trees placed, from what it
sees around that landmark (poselive.face_shape then slides the jaw and brow points along their lines).

The face is first turned upright and scaled as the trees saw it (face_trees.upright_frame of the landmarks:
`FRAME_PX` px a frame side) into a `CANVAS_PX` square canvas, normalised to zero mean and unit spread. Around
each landmark two `PATCH_PX` square patches are cut: one from the canvas, one from the canvas at half
resolution (twice the view: the jaw line needs the face's outline around it). One shared convolutional trunk
reads each landmark's patches; a linear head of that landmark's own turns them into its offset from the patch
centre. The trees place points well inside the eyes and mouth and less well along the jaw; this network was
trained on shapes shaken as the trees err, so it learns to pull each point back to the labelled one.

The network runs on ONNX Runtime (poselive.backends.ort_session); torch only trains it
(poselive.train.face_refine).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from poselive.errors import WeightsError
from poselive.face_trees import upright_frame
from poselive.schemas import FACE68
from poselive.transforms import apply_matrix, invert_matrix, mirror_points

FRAME_PX = 128     # the upright frame's side on the canvas
CANVAS_PX = 160    # room around the frame for patches at the jaw
PATCH_PX = 32
OFFSET_UNIT_PX = 8.0  # the network's output unit, canvas px (keeps its targets near 1)
NUM_LANDMARKS = FACE68.num_keypoints


@dataclass(frozen=True)
class PatchInput:
    """What the network sees of one face: patches (68, 2, PATCH_PX, PATCH_PX) float32 (fine, coarse), the
    patch centres (68, 2) canvas px, and the 2x3 affine from canvas px back to image px."""
    patches: np.ndarray
    centres: np.ndarray
    canvas_to_image: np.ndarray


def canvas_of(gray: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(canvas CANVAS_PX x CANVAS_PX float32, normalised; 2x3 affine image px -> canvas px) of the face whose
    landmarks (68, 2+) image px are given, in their upright frame."""
    frame = upright_frame(landmarks)
    scale = FRAME_PX / frame.side
    c, s = np.cos(-frame.angle), np.sin(-frame.angle)
    turn = scale * np.array([[c, -s], [s, c]])
    affine = np.c_[turn, np.full(2, CANVAS_PX / 2) - turn @ np.asarray(frame.centre, np.float64)]
    canvas = cv2.warpAffine(gray, affine, (CANVAS_PX, CANVAS_PX), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    # The spread floor keeps a flat (dark, overexposed) face from being stretched into noise.
    return (canvas - canvas.mean()) / (canvas.std() + 8.0), affine


def patch_input(gray: np.ndarray, landmarks: np.ndarray) -> PatchInput:
    """The network's input for one face: grey uint8 image, landmarks (68, 2+) image px."""
    canvas, affine = canvas_of(gray, landmarks)
    half = PATCH_PX // 2
    uv = apply_matrix(affine, np.asarray(landmarks, np.float64)[:, :2])
    centres = np.clip(np.round(uv), half, CANVAS_PX - half).astype(np.int64)
    steps = np.arange(-half, half)
    fine = canvas[centres[:, 1, None, None] + steps[None, :, None], centres[:, 0, None, None] + steps[None, None, :]]
    coarse_canvas = np.pad(cv2.resize(canvas, (CANVAS_PX // 2, CANVAS_PX // 2), interpolation=cv2.INTER_AREA),
                           half, mode="edge")
    c2 = np.round(centres / 2).astype(np.int64) + half
    coarse = coarse_canvas[c2[:, 1, None, None] + steps[None, :, None], c2[:, 0, None, None] + steps[None, None, :]]
    return PatchInput(np.stack([fine, coarse], 1).astype(np.float32), centres.astype(np.float64),
                      invert_matrix(affine))


def landmarks_from_offsets(inp: PatchInput, offsets: np.ndarray) -> np.ndarray:
    """Image px landmarks (68, 2) float32 from the network's offsets (68, 2) for this input."""
    return apply_matrix(inp.canvas_to_image, inp.centres + OFFSET_UNIT_PX * offsets).astype(np.float32)


class PatchRefiner:
    """face-full's refining network from an ONNX file: `refine(gray, landmarks)`. About 3.5 ms a face a look on 2
    CPU cores; refine(flip=True) looks twice (`poselive bench --face`: the predict row against the trees' row)."""

    def __init__(self, onnx_path: str | os.PathLike, threads: int | None = None):
        from poselive.backends import ort_session
        self.path = Path(onnx_path)
        self.session = ort_session(self.path, threads)
        shape = self.session.get_inputs()[0].shape
        if len(shape) != 5 or list(shape[1:]) != [NUM_LANDMARKS, 2, PATCH_PX, PATCH_PX]:
            raise WeightsError(f"{self.path} is not a face-full refining network: it takes input {shape}, "
                               f"not (N, {NUM_LANDMARKS}, 2, {PATCH_PX}, {PATCH_PX})")
        self.input_name = self.session.get_inputs()[0].name

    def refine(self, gray: np.ndarray, landmarks: np.ndarray, flip: bool = False) -> np.ndarray:
        """Landmarks (N, 68, 2+) image px of faces in the grey uint8 image -> their refined x, y (N, 68, 2)
        float32. flip: also refine the mirror image (left and right landmarks swapped) and average the two, as
        the flip test does for heatmaps; twice the time."""
        landmarks = np.asarray(landmarks, np.float64)[..., :2].reshape(-1, NUM_LANDMARKS, 2)
        if not len(landmarks):
            return np.zeros((0, NUM_LANDMARKS, 2), np.float32)
        if not flip:
            return self._run(gray, landmarks)
        width, perm = gray.shape[1], FACE68.flip_permutation()
        seen_mirrored = self._run(np.ascontiguousarray(gray[:, ::-1]), mirror_points(landmarks, width, perm))
        return ((self._run(gray, landmarks) + mirror_points(seen_mirrored, width, perm)) / 2).astype(np.float32)

    def _run(self, gray: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        inputs = [patch_input(gray, lm) for lm in landmarks]
        offsets = self.session.run(None, {self.input_name: np.stack([i.patches for i in inputs])})[0]
        return np.stack([landmarks_from_offsets(i, o) for i, o in zip(inputs, offsets)])
