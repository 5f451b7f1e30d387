"""Keypoint sets as data: names, skeleton edges, left/right flip pairs, OKS sigmas.

Everything that depends on *which* keypoints a model predicts reads it from a `KeypointSchema`; no other module
hard-codes joint indices.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KeypointSchema:
    name: str
    keypoints: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]   # edges drawn between keypoints (0-based indices)
    flip_pairs: tuple[tuple[int, int], ...]  # (left, right) index pairs swapped by a horizontal flip
    sigmas: tuple[float, ...]               # per-keypoint OKS falloff (COCO convention); empty if undefined

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    def flip_permutation(self) -> np.ndarray:
        """Index array `perm` such that `kpts_flipped = kpts[perm]` after mirroring the image horizontally."""
        perm = np.arange(self.num_keypoints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def index(self, name: str) -> int:
        return self.keypoints.index(name)


COCO17 = KeypointSchema(
    name="coco17",
    keypoints=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    skeleton=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
        (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    # COCO keypoint evaluation sigmas, as the OKS formula uses them (pycocotools/cocoeval.py writes them x10
    # and divides by 10). A tenfold sigma once made the tracker's OKS accept a neighbour 3 body widths away.
    sigmas=(.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, .107, .107, .087, .087, .089, .089),
)


def _face68() -> KeypointSchema:
    # 300-W / iBUG 68-point layout, 0-based. "left"/"right" are the subject's, as in 300-W: points 36-41 are the
    # subject's right eye (image left in a frontal face), 42-47 the left eye.
    groups = (
        ("jaw", 0, 17), ("right_brow", 17, 22), ("left_brow", 22, 27), ("nose_bridge", 27, 31),
        ("nose_base", 31, 36), ("right_eye", 36, 42), ("left_eye", 42, 48), ("outer_lip", 48, 60),
        ("inner_lip", 60, 68),
    )
    names = []
    for g, a, b in groups:
        names += [f"{g}_{i - a}" for i in range(a, b)]
    # Mirror pairs of the 68-point layout (jaw 0<->16, brows 17<->26, eyes 36<->45, mouth 48<->54, ...).
    pairs = [(i, 16 - i) for i in range(8)]
    pairs += [(17 + i, 26 - i) for i in range(5)]
    pairs += [(31, 35), (32, 34)]
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    pairs += [(48, 54), (49, 53), (50, 52), (59, 55), (58, 56)]
    pairs += [(60, 64), (61, 63), (67, 65)]
    edges = []
    for g, a, b in groups:
        edges += [(i, i + 1) for i in range(a, b - 1)]
        if g in ("right_eye", "left_eye", "outer_lip", "inner_lip"):
            edges.append((b - 1, a))  # closed contours
    return KeypointSchema(name="face68", keypoints=tuple(names), skeleton=tuple(edges),
                          flip_pairs=tuple(pairs), sigmas=())


FACE68 = _face68()
# Outer eye corners: the 300-W inter-ocular normalisation for NME.
FACE68_OUTER_EYE_CORNERS = (36, 45)

# The person detector predicts one "keypoint": the centre of each person's box (CenterNet-style), plus box size
# maps as extra outputs.
PERSON_CENTRE = KeypointSchema(name="person_centre", keypoints=("person_centre",), skeleton=(), flip_pairs=(),
                               sigmas=())

SCHEMAS = {s.name: s for s in (COCO17, FACE68, PERSON_CENTRE)}


def schema_by_name(name: str) -> KeypointSchema:
    try:
        return SCHEMAS[name]
    except KeyError:
        raise ValueError(f"unknown keypoint schema {name!r}; known: {', '.join(SCHEMAS)}") from None
