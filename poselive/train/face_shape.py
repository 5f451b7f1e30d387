"""Fitting face-full's shape model (poselive.face_shape): `poselive train face-shape [--ship]`, a few seconds.

The model is the mean and covariance of the clean 300-W training labels and their mirrors, each aligned to the
mean by scale, rotation and translation (generalised Procrustes). The measurement noise it assumes
(SHIPPED_NOISE) is not learnt from these labels: the patch network has seen them, so its errors there are too
small. It was chosen on the held-out faces from a small grid; chosen on one half of them it did as well on the
other half as chosen on all (see the face-full card in models/README.md).
"""
from __future__ import annotations

import numpy as np

from poselive.face_shape import NUM_LANDMARKS, ShapeModel, ShapeNoise, aligned_to
from poselive.schemas import FACE68_OUTER_EYE_CORNERS

# Sure across the jaw and brow lines and at the eyes, nose and mouth; unsure along the lines (face_shape's
# docstring has the measured errors this reflects).
SHIPPED_NOISE = ShapeNoise(jaw_along=0.07, jaw_across=0.02, brow_along=0.04, brow_across=0.02, other=0.01)


def _unit_eyes(xy: np.ndarray) -> np.ndarray:
    """Centred, outer eye corners 1 apart."""
    xy = xy - xy.mean(0)
    left, right = FACE68_OUTER_EYE_CORNERS
    return xy / np.linalg.norm(xy[left] - xy[right])


def fit_shape_model(shapes: np.ndarray, noise: ShapeNoise = SHIPPED_NOISE, rounds: int = 5) -> ShapeModel:
    """shapes (N, 68, 2) image px -> their ShapeModel."""
    shapes = np.asarray(shapes, np.float64)[..., :2]
    if shapes.ndim != 3 or shapes.shape[1:] != (NUM_LANDMARKS, 2) or len(shapes) < 2 * NUM_LANDMARKS:
        raise ValueError(f"need (N >= {2 * NUM_LANDMARKS}, 68, 2) shapes, got {shapes.shape}")
    mean = _unit_eyes(shapes[0])
    for _ in range(rounds):
        mean = _unit_eyes(np.stack([aligned_to(mean, s)[0] for s in shapes]).mean(0))
    aligned = np.stack([aligned_to(mean, s)[0] for s in shapes])
    return ShapeModel(aligned.mean(0), np.cov(aligned.reshape(len(shapes), -1), rowvar=False), noise)


def train_command(args) -> int:
    """`poselive train face-shape [--out RUN] [--ship]`: RUN/face-shape.npz from the 300-W training labels and
    their mirrors; --ship copies it into models/."""
    from pathlib import Path

    from poselive.errors import PoseliveError
    from poselive.schemas import FACE68
    from poselive.train.face_data import face_records, split_of_face
    from poselive.transforms import mirror_points
    from poselive.weights import FACE_SHAPE, ship_file
    out = Path(args.out or f"runs/{FACE_SHAPE}")
    trained = out / f"{FACE_SHAPE}.npz"
    if args.ship:
        ship_file(trained)
        return 0
    labels = np.array([np.asarray(r.keypoints, np.float64)[:, :2]
                       for r in face_records(Path(args.data) if args.data else None)
                       if r.dataset != "ytf68" and split_of_face(r) == "train"])
    if not len(labels):
        raise PoseliveError("no 300-W training faces found; set POSELIVE_DATA to the shared data folder")
    # Mirrored about x = 0: alignment removes where a shape lies, so any mirror line does.
    shapes = np.concatenate([labels, mirror_points(labels, 0, FACE68.flip_permutation())])
    out.mkdir(parents=True, exist_ok=True)
    fit_shape_model(shapes).save(trained)
    print(f"{FACE_SHAPE}: {len(labels)} faces and their mirrors; written to {trained}")
    return 0
