"""Training face-full's regression-tree cascade (poselive.face_trees) with dlib's trainer, and converting what
dlib writes into poselive's own file, which the runtime reads without dlib.

dlib (PyPI `dlib-bin`) is a training tool here, like the teachers: `pip install poselive[train]` brings it.

Training set: the clean human-labelled 300-W training faces (`face_data.split_of_face` == "train"; YTF68's
labels are too noisy for a model that places points to 3% of the eye distance), each also mirrored with the
68-point left/right permutation, and each seen in `copies` framings: its upright frame (face_trees.upright_frame
of its labels), then frames moved, resized and turned as the frame of a first look's landmarks is (face-full
starts from face-lite's landmarks).
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from poselive.errors import PoseliveError
from poselive.face_trees import FaceFrame, TreeCascade, upright_frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TreeTrainConfig:
    """dlib's shape_predictor_training_options, named as dlib names them, plus the data's framings. The defaults
    are dlib's own but for `oversampling_amount` and the framings (see the model card)."""
    cascade_depth: int = 10
    num_trees_per_cascade_level: int = 500
    tree_depth: int = 4
    nu: float = 0.1
    oversampling_amount: int = 20
    feature_pool_size: int = 400
    num_test_splits: int = 20
    lambda_param: float = 0.1
    copies: int = 1               # framings of each face (and of its mirror); the first is the landmark box
    shift_sigma: float = 0.04     # of the box side, for framings after the first
    scale_range: tuple[float, float] = (0.92, 1.12)
    rotation_sigma_deg: float = 4.0  # the error of the first look's eye line
    seed: int = 0


# face-full as shipped (see its model card for the runs behind these choices).
SHIPPED_CONFIG = TreeTrainConfig(copies=2, oversampling_amount=15, tree_depth=5)


# ------------------------------------------------------------------------------------- dlib's file, read
class _DlibReader:
    """dlib's serialisation: integers as a control byte (low 4 bits: byte count, 0x80: negative) and that many
    little-endian bytes; floats as an integer mantissa and exponent (value = m * 2^e); matrices as -rows, -cols
    and the values; std::vectors as a size and the items."""

    def __init__(self, data: bytes):
        self.data = data
        self.at = 0

    def int(self) -> int:
        control = self.data[self.at]
        n = control & 0x0F
        value = int.from_bytes(self.data[self.at + 1:self.at + 1 + n], "little")
        self.at += 1 + n
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        return float(np.ldexp(float(mantissa), self.int()))

    def floats(self, n: int) -> list[float]:
        return [self.float() for _ in range(n)]

    def column(self) -> np.ndarray:
        rows, cols = abs(self.int()), abs(self.int())
        return np.array(self.floats(rows * cols), np.float32)


def read_dlib_shape_predictor(path: str | Path) -> TreeCascade:
    """A dlib shape_predictor .dat (version 1) as a TreeCascade, leaves quantised to int8 per tree."""
    r = _DlibReader(Path(path).read_bytes())
    if r.int() != 1:
        raise PoseliveError(f"{path}: not a version-1 dlib shape predictor")
    mean = r.column().reshape(-1, 2)
    split_a, split_b, thresholds, leaves = [], [], [], []
    for _ in range(r.int()):
        stage = [[], [], [], []]
        for _ in range(r.int()):
            splits = [(r.int(), r.int(), r.float()) for _ in range(r.int())]
            stage[0].append([s[0] for s in splits])
            stage[1].append([s[1] for s in splits])
            stage[2].append([s[2] for s in splits])
            stage[3].append([r.column() for _ in range(r.int())])
        for out, part in zip((split_a, split_b, thresholds, leaves), stage):
            out.append(part)
    anchors = [[r.int() for _ in range(r.int())] for _ in range(r.int())]
    offsets = [[r.floats(2) for _ in range(r.int())] for _ in range(r.int())]
    if r.at != len(r.data):
        raise PoseliveError(f"{path}: {len(r.data) - r.at} bytes left over; not a dlib shape predictor")
    leaves = np.array(leaves, np.float32)
    scale = np.abs(leaves).max(axis=(2, 3)) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.round(leaves / scale[:, :, None, None]), -127, 127).astype(np.int8)
    return TreeCascade(mean_shape=mean.astype(np.float32), anchors=np.array(anchors, np.int16),
                       offsets=np.array(offsets, np.float32), split_a=np.array(split_a, np.int16),
                       split_b=np.array(split_b, np.int16), thresholds=np.array(thresholds, np.float32),
                       leaves=q, leaf_scale=scale.astype(np.float32))


# ------------------------------------------------------------------------------------------ training
def _upright(gray: np.ndarray, xy: np.ndarray, frame: FaceFrame) -> tuple[np.ndarray, np.ndarray, tuple]:
    """The image turned about the frame's centre so the frame stands upright (same size), the landmarks with
    it, and the frame's now axis-aligned box (x, y, w, h)."""
    import cv2
    c, s = np.cos(-frame.angle), np.sin(-frame.angle)
    turn = np.array([[c, -s], [s, c]])
    centre = np.asarray(frame.centre)
    m = np.c_[turn, centre - turn @ centre]
    out = cv2.warpAffine(gray, m, (gray.shape[1], gray.shape[0]), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT)
    half = frame.side / 2
    return out, xy @ turn.T + m[:, 2], (centre[0] - half, centre[1] - half, frame.side, frame.side)


def training_set(records, cfg: TreeTrainConfig) -> tuple[list[np.ndarray], list[np.ndarray], list[tuple]]:
    """(grey images, landmarks (68, 2) image px, face boxes x, y, w, h): every record and its mirror, each in
    cfg.copies framings, every framing turned upright (see face_trees.upright_frame)."""
    from poselive.train.face_data import grey_faces_and_mirrors
    rng = np.random.default_rng(cfg.seed)
    images, shapes, boxes = [], [], []
    for img, pts in grey_faces_and_mirrors(records):
        exact = upright_frame(pts)
        for k in range(cfg.copies):
            frame = exact
            if k:
                shift = rng.normal(0, cfg.shift_sigma, 2) * exact.side
                frame = FaceFrame((exact.centre[0] + shift[0], exact.centre[1] + shift[1]),
                                  exact.side * rng.uniform(*cfg.scale_range),
                                  exact.angle + np.radians(rng.normal(0, cfg.rotation_sigma_deg)))
            img_k, pts_k, box = _upright(img, pts, frame)
            images.append(img_k)
            shapes.append(pts_k)
            boxes.append(box)
    return images, shapes, boxes


def train_dlib_predictor(images, shapes, boxes, cfg: TreeTrainConfig, threads: int = 2):
    """dlib's trainer on grey images with their landmarks and face boxes: a dlib.shape_predictor."""
    try:
        import dlib
    except ImportError:
        raise PoseliveError("training face-full needs dlib: pip install dlib-bin") from None
    objects = []
    for pts, (x, y, w, h) in zip(shapes, boxes):
        rect = dlib.rectangle(int(round(x)), int(round(y)), int(round(x + w)), int(round(y + h)))
        objects.append([dlib.full_object_detection(rect, [dlib.point(int(round(a)), int(round(b))) for a, b in pts])])
    opts = dlib.shape_predictor_training_options()
    for name in ("cascade_depth", "num_trees_per_cascade_level", "tree_depth", "nu", "oversampling_amount",
                 "feature_pool_size", "num_test_splits"):
        setattr(opts, name, getattr(cfg, name))
    opts.lambda_param = cfg.lambda_param
    opts.random_seed = str(cfg.seed)
    opts.num_threads = threads
    opts.be_verbose = False
    return dlib.train_shape_predictor(images, objects, opts)


def train_trees(images, shapes, boxes, cfg: TreeTrainConfig, threads: int = 2) -> TreeCascade:
    """train_dlib_predictor, converted to poselive's cascade."""
    predictor = train_dlib_predictor(images, shapes, boxes, cfg, threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trees.dat"
        predictor.save(str(path))
        return read_dlib_shape_predictor(path)


def train_command(args) -> int:
    """`poselive train face-full [--out RUN] [--ship]`: the trees from the 300-W training faces (about 13 minutes
    on 2 cores; dlib's trainer has no resume, so this is one run), written to RUN/face-full.npz; with --ship,
    RUN/face-full.npz is copied into models/."""
    from poselive.train.face_data import face_records, split_of_face
    from poselive.weights import FACE_TREES, ship_file
    out = Path(args.out or f"runs/{FACE_TREES}")
    trained = out / f"{FACE_TREES}.npz"
    if args.ship:
        ship_file(trained)
        return 0
    faces = [r for r in face_records(Path(args.data) if args.data else None)
             if r.dataset != "ytf68" and split_of_face(r) == "train"]
    if not faces:
        raise PoseliveError("no 300-W training faces found; set POSELIVE_DATA to the shared data folder")
    images, shapes, boxes = training_set(faces, SHIPPED_CONFIG)
    log.info("face-full: %d training faces, %d samples", len(faces), len(images))
    cascade = train_trees(images, shapes, boxes, SHIPPED_CONFIG)
    out.mkdir(parents=True, exist_ok=True)
    cascade.save(trained)
    print(f"{FACE_TREES}: {len(faces)} faces, {len(images)} samples; written to {trained}")
    return 0
