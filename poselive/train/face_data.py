"""Face landmark datasets (68 points, 300-W layout): records from .pts + .jpg folders, a fixed validation split,
and the crop caches `poselive.train.loop.train` consumes.

Each face becomes a record shaped like a body record (coco_data.PersonRecord: image, id, box, keypoints,
weight, dataset) whose box is the face box of its landmarks (poselive.face_detect.face_box_from_landmarks), so
`coco_data.build_cache` cuts the same 2.2x-context square around it that it cuts around a person, and
augmentation jitters that box (shift, scale, rotation, flip) as a detector's or a tracker's box would move.
With a 224 px cache and a 128 px input (1.25x the box), the cache keeps the face at the input's resolution.

`FaceTask` is the training loop's KeypointTask set up for faces (face augmentation, NME-based validation);
`face_task()` builds it with its data in one call.

Also here, because they are fitted on these records: the 3D mean face of poselive.headpose
(`derive_mean_face_3d`) and the face-box calibrations of poselive.face_detect.
"""
from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from poselive.boxes import box_intersection
from poselive.errors import PoseliveError
from poselive.face_detect import face_box_from_landmarks
from poselive.face_metrics import auc, nme
from poselive.nets.configs import config_by_name
from poselive.pts import read_pts
from poselive.schemas import FACE68
from poselive.train.augment import AugmentConfig, augment_person
from poselive.train.coco_data import CropCache, PersonRecord, build_cache, data_root
from poselive.train.loop import KeypointTask, predict_cache
from poselive.transforms import MEAN_BGR_U8, mirror_points

log = logging.getLogger(__name__)

# A face record has exactly a body record's fields; build_cache and the training loop treat both alike.
FaceRecord = PersonRecord

# (name, folder under the data root, loss weight). ytf68's labels are undocumented (integer coordinates, maybe
# machine-made; dlib scores 10% NME against them), so they count a quarter: enough to teach video-frame faces,
# too little to pull the points off where the clean 300-W labels put them.
FACE_SETS = (
    ("afw", "face/300w/afw", 1.0),
    ("helen_train", "face/300w/helen_train", 1.0),
    ("ytf68", "face/ytf68/images", 0.25),
)
# Validation: every photo whose name hashes to 0 mod N (about 1 in 5 AFW photos, 1 in 10 HELEN photos). The
# split is by photo, not by face file, so two faces of one AFW photo never sit on both sides; a hash keeps it
# fixed when files are added. ytf68 is train only.
VAL_EVERY = {"afw": 5, "helen_train": 10}

# Face augmentation: faces tilt up to about 30 degrees (a sigma of 18 puts 9 in 10 rotated crops within it), and
# the box moves as a detector's does (the Haar box, calibrated, is off the landmark box by up to a tenth of its
# side and a fifth of its size); a face has no half body (nor a frame edge across it: the face finders box
# only whole faces). Mirroring swaps the 68 points by FACE68's left/right permutation.
FACE_AUGMENT = AugmentConfig(scale_range=(0.8, 1.3), rotation_sigma_deg=18.0, rotation_prob=0.8,
                             shift_fraction=0.06, flip_prob=0.5, half_body_prob=0.0, edge_cut_prob=0.0,
                             occlusion_prob=0.3,
                             blur_prob=0.25, noise_prob=0.2, gray_prob=0.1)


def photo_name(image_path: str) -> str:
    """The photo a face crop came from: 300-W names faces `<photo>_<n>.jpg`."""
    stem = Path(image_path).stem
    return stem.rsplit("_", 1)[0] if "_" in stem else stem


def read_face_folder(folder: Path, dataset: str, weight: float = 1.0) -> list[FaceRecord]:
    """One record per `<name>.pts` with a `<name>.jpg` beside it, in file-name order. keypoints (68, 3): x, y in
    image px (0-based pixel centres), v = 2."""
    out = []
    for i, pts in enumerate(sorted(Path(folder).glob("*.pts"))):
        img = pts.with_suffix(".jpg")
        if not img.exists():
            log.warning("skipping %s: no image %s beside it", pts, img.name)
            continue
        xy = read_pts(pts)
        if len(xy) != FACE68.num_keypoints:
            log.warning("skipping %s: %d points, expected %d", pts, len(xy), FACE68.num_keypoints)
            continue
        kp = np.c_[xy, np.full(len(xy), 2.0)].astype(np.float32)
        out.append(FaceRecord(str(img), i, face_box_from_landmarks(xy), kp, weight, dataset))
    return out


def face_records(root: Path | None = None) -> list[FaceRecord]:
    """Every face of FACE_SETS under the data root (sets that are absent are skipped with a warning)."""
    root = data_root(str(root) if root else None)
    recs = []
    for name, sub, weight in FACE_SETS:
        folder = root / sub
        if not folder.is_dir():
            log.warning("face set %s not found at %s", name, folder)
            continue
        recs += read_face_folder(folder, name, weight)
    return recs


def split_of_face(rec: FaceRecord) -> str:
    """'val' or 'train', fixed by the photo's name (see VAL_EVERY)."""
    n = VAL_EVERY.get(rec.dataset)
    if n and zlib.crc32(photo_name(rec.image_path).encode()) % n == 0:
        return "val"
    return "train"


def grey_faces_and_mirrors(records: list[FaceRecord]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(grey uint8 image, landmarks (68, 2) image px) of every record, each followed by its mirror image with
    the 68-point left/right permutation; unreadable images are skipped with a warning."""
    import cv2
    perm = FACE68.flip_permutation()
    out = []
    for rec in records:
        gray = cv2.imread(rec.image_path, cv2.IMREAD_GRAYSCALE)
        if gray is None:
            log.warning("skipping unreadable %s", rec.image_path)
            continue
        xy = np.asarray(rec.keypoints, np.float64)[:, :2]
        out += [(gray, xy), (np.ascontiguousarray(gray[:, ::-1]), mirror_points(xy, gray.shape[1], perm))]
    return out


def face_caches(root: Path | None = None, cache_dir: Path | None = Path("cache")) -> tuple[CropCache, CropCache]:
    """(train_cache, val_cache) for `poselive.train.loop.train` with the face-lite config.

    Crops are cached as `cache_dir/face-train-<key>.npz` and `face-val-<key>.npz` (about 0.7 GB; building them
    takes under a minute on 2 cores). cache_dir=None keeps them in memory only."""
    recs = face_records(root)
    if not recs:
        raise PoseliveError(f"no face data under {data_root(str(root) if root else None)}/face; set "
                                "POSELIVE_DATA to the shared data folder")
    train = [r for r in recs if split_of_face(r) == "train"]
    val = [r for r in recs if split_of_face(r) == "val"]
    log.info("faces: %d train (%s), %d val", len(train),
             ", ".join(f"{n} {sum(r.dataset == n for r in train)}" for n, _, _ in FACE_SETS), len(val))
    val_cache = build_cache(val, cache_dir / "face-val" if cache_dir else None)
    train_cache = build_cache(train, cache_dir / "face-train" if cache_dir else None)
    return train_cache, val_cache


def predict_records(predict, records: list[FaceRecord]) -> np.ndarray:
    """Run a landmark predictor on each record's photo and face box: `predict(image_bgr, [box_xywh])` returns
    (1, 68, 2+) image px. Returns (N, 68, 2) float64, for face_metrics.nme against the records' keypoints."""
    import cv2

    out = []
    for r in records:
        img = cv2.imread(r.image_path, cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"cannot read {r.image_path}")
        out.append(np.asarray(predict(img, [r.box_xywh]), np.float64)[0, :, :2])
    return np.stack(out)


@dataclass(frozen=True)
class Negatives:
    """Crops with no face in them, for FaceTask: square cache images (M, S, S, 3) uint8 BGR and, per image,
    the boxes (M, N, 4) xywh cache px, NaN-padded, a negative crop must stay clear of (faces, heads)."""
    images: np.ndarray
    avoid: np.ndarray

    @staticmethod
    def from_faces(cache: CropCache) -> "Negatives":
        """Around the faces of the face cache: hair, ears, necks, collars, background."""
        return Negatives(cache.images, cache.boxes[:, None, :].astype(np.float64))

    @staticmethod
    def from_bodies(cache: CropCache) -> "Negatives":
        """Inside person crops (hands, arms, clothes, other backgrounds), clear of every labelled head; images
        with no labelled head joint are left out (the face may be there, unlabelled)."""
        head = cache.keypoints[:, :5]                                    # COCO-17: nose, eyes, ears
        seen = head[:, :, 2] > 0
        keep = seen.any(1)
        xy = np.where(seen[..., None], head[:, :, :2], np.nan)[keep]
        lo, hi = np.nanmin(xy, 1), np.nanmax(xy, 1)
        # A head is about twice as tall as its eye-to-ear spread is wide; pad generously so no chin or forehead
        # is called a non-face.
        c, half = (lo + hi) / 2, np.maximum((hi - lo).max(1, keepdims=True), 0.06 * cache.images.shape[1]) * 1.5
        boxes = np.c_[c - half, 2 * half, 2 * half].astype(np.float64)
        return Negatives(cache.images[keep], boxes[:, None, :])

    def __len__(self) -> int:
        return len(self.images)

    def sample_box(self, rng: np.random.Generator, j: int) -> tuple[float, float, float, float] | None:
        """A random square box in image j overlapping no avoided box by more than a fifth of its own area, and
        mostly photo (None after 8 tries)."""
        S = self.images.shape[1]
        for _ in range(8):
            side = S * rng.uniform(0.15, 0.45)
            x, y = rng.uniform(0, S - side, 2)
            if np.nansum(box_intersection([(x, y, side, side)], self.avoid[j])) > 0.2 * side * side:
                continue
            # Caches pad beyond the photo with the mean colour: a crop mostly of that teaches nothing.
            patch = self.images[j, int(y):int(y + side), int(x):int(x + side)]
            if np.all(patch == MEAN_BGR_U8, axis=-1).mean() < 0.5:
                return (float(x), float(y), float(side), float(side))
        return None


class FaceTask(KeypointTask):
    """KeypointTask for faces: FACE_AUGMENT, no half body, and validation by AUC@0.08 of the 300-W NME
    (face_metrics), which keeps telling models apart long after PCK@0.2 of the box has saturated.

    With `negatives`, a `negative_prob` share of samples is a crop with no face, whose target is every heatmap
    empty at full weight. Trained on faces alone, the network drew a face on whatever it was shown (crops a
    face's width beside real faces scored >= 0.5 in 58% of 320 tries), so its score could not tell a face
    from a hand; the live face stage relies on that score."""
    metric_name = "val AUC@0.08 (NME)"

    def __init__(self, cfg, train_cache: CropCache, val_cache: CropCache | None, aug: AugmentConfig = FACE_AUGMENT,
                 negatives: tuple[Negatives, ...] = (), negative_prob: float = 0.2, loss: str = "awing"):
        """loss: "awing" (adaptive wing, see adaptive_wing_loss) or "mse" (KeypointTask's)."""
        super().__init__(cfg, train_cache, val_cache, half_body=False, aug=aug)
        self.negatives = negatives
        self.negative_prob = negative_prob if negatives else 0.0
        if loss not in ("awing", "mse"):
            raise ValueError(f"unknown face loss {loss!r}; 'awing' or 'mse'")
        self.loss_name = loss

    def loss(self, stacks, targets):
        """Adaptive wing on face crops; on non-face crops (every target empty) KeypointTask's MSE instead.
        Adaptive wing barely charges a background that is nearly flat, so with it alone the peaks on non-face
        crops crept up (crops beside the held-out faces scoring >= 0.3: 2.5% -> 5.9%), and the live stage's
        score gate relies on them staying low."""
        if self.loss_name == "mse":
            return super().loss(stacks, targets)
        target, weight = targets
        k = self.cfg.num_keypoints
        face = (target.flatten(1).amax(1) > 0).float()[:, None]
        total = 0.0
        for hm in stacks:
            hm = hm[:, :k].float()
            per_map = face * adaptive_wing_loss(hm, target) + (1 - face) * 100.0 * (hm - target).pow(2).mean((2, 3))
            total = total + (per_map * weight).sum(1).mean()
        return total

    def sample(self, rng: np.random.Generator, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if rng.random() < self.negative_prob:
            neg = self.negatives[int(rng.integers(len(self.negatives)))]
            j = int(rng.integers(len(neg)))
            box = neg.sample_box(rng, j)
            if box is not None:
                k = self.cfg.num_keypoints
                crop, _ = augment_person(neg.images[j], box, np.zeros((k, 3), np.float32), self.cfg.input_wh,
                                         self.flip_perm, self.aug, rng, None, False)
                return (crop, *self.empty_target())
        return super().sample(rng, i)

    def validate(self, model) -> float:
        pred = predict_cache(model, self.val_cache)
        return auc(nme(pred, self.val_cache.keypoints))


def adaptive_wing_loss(pred, target, omega: float = 14.0, theta: float = 0.5, epsilon: float = 1.0,
                       alpha: float = 2.1, foreground_weight: float = 10.0):
    """Adaptive wing loss (Wang et al., ICCV 2019) of heatmaps pred, target (N, K, h, w) -> (N, K), the mean
    over each map.

    Near a target's peak (y -> 1) it behaves like L1, whose gradient does not vanish as the error shrinks, so
    the peak keeps sharpening where MSE stops pulling; on the background (y = 0) it is nearly quadratic, so
    small noise costs little. Pixels in the 3x3-dilated region where the target exceeds 0.2 count
    `foreground_weight` times (the paper's weighted loss map): 68 small peaks are otherwise a few % of the map."""
    import torch
    import torch.nn.functional as F
    diff = (pred - target).abs()
    power = alpha - target
    ratio = theta / epsilon
    a = omega / (1 + ratio ** power) * power * ratio ** (power - 1) / epsilon
    c = theta * a - omega * torch.log1p(ratio ** power)
    loss = torch.where(diff < theta, omega * torch.log1p((diff / epsilon) ** power), a * diff - c)
    fg = F.max_pool2d((target > 0.2).float(), 3, stride=1, padding=1)
    return (loss * (1 + (foreground_weight - 1) * fg)).mean((2, 3))


def face_task(config_name: str = "face-lite", root: Path | None = None, cache_dir: Path | None = Path("cache"),
              negative_prob: float = 0.2) -> FaceTask:
    """The training task for a face config, data and caches included: `loop.train(face_task(),
    Path("runs/face-lite"), minutes=...)`. Negatives come from around the training faces and from the body
    training crops (coco_data's cache, about 1 GB more in memory)."""
    from poselive.train.coco_data import body_records, split_of
    train_cache, val_cache = face_caches(root, cache_dir)
    negatives: tuple[Negatives, ...] = ()
    if negative_prob > 0:
        bodies = [r for r in body_records(data_root(str(root) if root else None)) if split_of(r) == "train"]
        body_cache = build_cache(bodies, cache_dir / "body-train" if cache_dir else None)
        negatives = (Negatives.from_faces(train_cache), Negatives.from_bodies(body_cache))
    return FaceTask(config_by_name(config_name), train_cache, val_cache, negatives=negatives,
                    negative_prob=negative_prob)


# ------------------------------------------------------------------------------------- 3D mean face (headpose)
_RIGID_POINTS = tuple(range(27, 48))  # nose and eyes: they move least with expression and are never silhouettes


def _scaled_orthographic(a: np.ndarray) -> np.ndarray:
    """The nearest 2x3 matrix whose rows are orthogonal and of equal length (a scaled orthographic camera)."""
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    return s.mean() * u @ vt


def derive_mean_face_3d(landmarks: np.ndarray, iterations: int = 15, eye_corner_distance_mm: float = 90.0
                        ) -> np.ndarray:
    """A 68-point 3D mean face from many 2D annotations of different faces in different poses.

    landmarks: (F, 68, 2) image px. Returns (68, 3) float64 in mm, model frame of poselive.headpose: x to the
    subject's left, y down, z away from the viewer, origin at the nose tip (landmark 30), left-right symmetric,
    outer eye corners `eye_corner_distance_mm` apart (about the adult mean, Farkas).

    Method: each face is a scaled orthographic view of one rigid shape. Rank-3 factorisation of the stacked,
    normalised landmarks (Tomasi-Kanade) with the metric upgrade gives a first shape; then alternating least
    squares: each face's camera from the nose and eye points alone (jaw-contour points are silhouettes that
    slide over the face as it turns), every point's 3D position from all cameras, with Huber weights so mouths
    that open and mislabelled points count less. The depth sign is fixed by the nose being nearest the viewer,
    and the frame by symmetry (x), the eye-corner to mouth-corner direction (y, so zero pitch means that line
    is parallel to the image plane).
    """
    L = np.asarray(landmarks, np.float64)
    F, K = L.shape[:2]
    rigid = list(_RIGID_POINTS)
    X = L - L[:, rigid].mean(1, keepdims=True)
    X /= np.sqrt((X[:, rigid] ** 2).sum((1, 2), keepdims=True) / len(rigid))
    # Factorisation and metric upgrade: find sym(Q Q^T) making every camera's two rows orthogonal, equal length.
    u, s, vt = np.linalg.svd(X.transpose(0, 2, 1).reshape(2 * F, K), full_matrices=False)
    m_hat = (u[:, :3] * np.sqrt(s[:3])).reshape(F, 2, 3)
    s_hat = np.sqrt(s[:3])[:, None] * vt[:3]

    def sym_row(a, b):
        return np.array([a[0] * b[0], a[0] * b[1] + a[1] * b[0], a[0] * b[2] + a[2] * b[0], a[1] * b[1],
                         a[1] * b[2] + a[2] * b[1], a[2] * b[2]])
    rows = [r for m1, m2 in m_hat for r in (sym_row(m1, m1) - sym_row(m2, m2), sym_row(m1, m2))]
    q = np.linalg.svd(np.array(rows))[2][-1]
    gram = np.array([[q[0], q[1], q[2]], [q[1], q[3], q[4]], [q[2], q[4], q[5]]])
    gram *= np.sign(np.trace(gram))
    w, v = np.linalg.eigh(gram)
    S = np.linalg.solve(v @ np.diag(np.sqrt(np.maximum(w, 1e-9))), s_hat)  # (3, K)
    weights = np.ones((F, K))
    for _ in range(iterations):
        cams = np.empty((F, 2, 3))
        for f in range(F):
            sr, wr = S[:, rigid], weights[f, rigid]
            cams[f] = _scaled_orthographic((X[f, rigid].T * wr) @ sr.T @ np.linalg.inv((sr * wr) @ sr.T))
        resid = np.linalg.norm(np.einsum("fij,jk->fki", cams, S) - X, axis=2)  # (F, K)
        c = 1.5 * np.median(resid)
        weights = np.minimum(1.0, c / np.maximum(resid, 1e-12))
        for k in range(K):
            sw = np.sqrt(weights[:, k])
            S[:, k] = np.linalg.lstsq((cams * sw[:, None, None]).reshape(-1, 3),
                                      (X[:, k] * sw[:, None]).reshape(-1), rcond=None)[0]
    return _canonical_face(S.T, eye_corner_distance_mm)


def _canonical_face(S: np.ndarray, eye_corner_distance_mm: float) -> np.ndarray:
    perm = FACE68.flip_permutation()
    S = S - S.mean(0)
    right = np.array([i for i in range(len(perm)) if perm[i] > i])  # subject's-right member of each pair
    x = (S[perm[right]] - S[right]).sum(0)
    x /= np.linalg.norm(x)
    y = (S[48] + S[54]) / 2 - (S[36] + S[45]) / 2
    y -= x * (x @ y)
    y /= np.linalg.norm(y)
    S = S @ np.stack([x, y, np.cross(x, y)]).T
    if S[30, 2] > (S[36, 2] + S[45, 2]) / 2:
        # The depth-reversed twin (orthographic views cannot tell them apart): mirror z, then restore the
        # handedness by mirroring x and swapping left and right.
        S = (S * np.array([-1.0, 1.0, -1.0]))[perm]
    S = (S + (S * np.array([-1.0, 1.0, 1.0]))[perm]) / 2
    S -= S[30]
    return S * (eye_corner_distance_mm / np.linalg.norm(S[45] - S[36]))


# ------------------------------------------------------------------------------ face-box calibrations (detect)
def coco_head_points(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COCO-17's nose, left eye and right eye (subject's) as 68-landmark stand-ins: the nose tip (30) and the
    eye-contour centres (42-47 left, 36-41 right). Each (2,) image px."""
    lm = np.asarray(landmarks, np.float64)[:, :2]
    return lm[30], lm[42:48].mean(0), lm[36:42].mean(0)


def fit_body_face_box(records: list[FaceRecord]) -> dict[str, float]:
    """Constants of face_detect.face_box_from_body, fitted on records' landmarks.

    Centre: least squares of (box centre - eye mid) on the eye line's perpendicular (pointing down the face, as
    long as the eye distance) and on (nose - eye mid). Scale: max(eye distance, k x eye-mid-to-nose distance)
    with k chosen to make the side ratio steadiest; side per scale: the median ratio. `eyes_only_down`: the
    centre's fit on the perpendicular alone, for bodies whose nose is not confident."""
    nose, leye, reye = (np.stack(a) for a in zip(*(coco_head_points(r.keypoints) for r in records)))
    boxes = np.array([r.box_xywh for r in records], np.float64)
    centre, side = boxes[:, :2] + boxes[:, 2:] / 2, boxes[:, 2]
    mid, eye = (leye + reye) / 2, leye - reye
    down = np.c_[-eye[:, 1], eye[:, 0]]
    to_nose = nose - mid
    coef = np.linalg.lstsq(np.stack([down, to_nose], -1).reshape(-1, 2), (centre - mid).reshape(-1), rcond=None)[0]
    eye_d, nose_d = np.linalg.norm(eye, axis=1), np.linalg.norm(to_nose, axis=1)
    best = None
    for k in np.arange(0.8, 2.51, 0.05):
        ratio = side / np.maximum(eye_d, k * nose_d)
        spread = float(np.std(np.log(ratio)))
        if best is None or spread < best[0]:
            best = (spread, float(k), float(np.median(ratio)))
    eyes_only = np.linalg.lstsq(down.reshape(-1, 1), (centre - mid).reshape(-1), rcond=None)[0]
    return {"down": float(coef[0]), "nose": float(coef[1]), "eyes_only_down": float(eyes_only[0]),
            "nose_weight": best[1], "side_per_scale": best[2], "log_side_std": best[0]}


def calibrate_detector(records: list[FaceRecord], detect_raw) -> dict[str, float]:
    """Fit a face_detect.DetectorCalibration for a detector: `detect_raw(image_bgr)` returns its own boxes
    (x, y, w, h). Each face is matched to the detection nearest its face box centre that lies within half a
    side of it; the medians of the per-face offsets and size ratios give the calibration. Also returns the
    fraction of faces found (`found`), a rough recall on these photos (one face per crop)."""
    import cv2

    dx, dy, ratio, found = [], [], [], 0
    for r in records:
        img = cv2.imread(r.image_path, cv2.IMREAD_COLOR)
        if img is None:
            continue
        x, y, w, _ = r.box_xywh
        c = np.array([x + w / 2, y + w / 2])
        best = None
        for b in detect_raw(img):
            bx, by, bw, bh = (float(v) for v in b)
            d = np.linalg.norm(np.array([bx + bw / 2, by + bh / 2]) - c)
            if d < 0.5 * w and 0.4 < w / bw < 2.5 and (best is None or d < best[0]):
                best = (d, bx, by, bw, bh)
        if best is None:
            continue
        _, bx, by, bw, bh = best
        found += 1
        dx.append((c[0] - bx - bw / 2) / bw)
        dy.append((c[1] - by - bh / 2) / bw)
        ratio.append(w / bw)
    if not found:
        return {"found": 0.0}
    return {"dx": float(np.median(dx)), "dy": float(np.median(dy)), "side_per_width": float(np.median(ratio)),
            "found": found / len(records)}

