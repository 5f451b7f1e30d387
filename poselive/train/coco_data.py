"""COCO keypoint datasets: read one or more json + image folders into person records, and cut a crop cache.

The cache holds, per person, a square region around the box (CACHE_CONTEXT x its longer side after the crop's
aspect ratio is applied) resized to CACHE_SIZE px, with keypoints and box mapped into it. Augmentation then
crops from the cache with the shared affine (poselive.transforms), which is far cheaper on a 2-core machine
than decoding full photos every step.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from poselive.transforms import MEAN_BGR_U8, CropBox, apply_matrix, crop_matrix, warp_crop

log = logging.getLogger(__name__)

CACHE_SIZE = 224
CACHE_CONTEXT = 2.2


def data_root(path: str | None = None) -> Path:
    """Where shared data lives: the argument, else $POSELIVE_DATA, else ../shared/data beside the project."""
    if path:
        return Path(path)
    if os.environ.get("POSELIVE_DATA"):
        return Path(os.environ["POSELIVE_DATA"])
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


@dataclass(frozen=True)
class PersonRecord:
    """One annotated person. keypoints (K, 3): x, y in image px (0-based pixel centres), v (0/1/2)."""
    image_path: str
    image_id: int
    box_xywh: tuple[float, float, float, float]
    keypoints: np.ndarray
    weight: float        # loss weight: 1 for hand labels, lower for pseudo-labels
    dataset: str


def box_covering_keypoints(box_xywh, kps: np.ndarray) -> tuple[float, float, float, float]:
    """The annotated box grown to cover its labelled keypoints: a few labels have a box of a few px around a
    whole person (fashion_a 775, 907, 916, 922; fashion_b 1130), and some joints stick out of their box; a
    training crop cut from such a box would miss the person."""
    x, y, w, h = (float(v) for v in box_xywh)
    pts = kps[kps[:, 2] > 0, :2]
    if len(pts) == 0:
        return (x, y, w, h)
    x0, y0 = min(x, float(pts[:, 0].min())), min(y, float(pts[:, 1].min()))
    x1, y1 = max(x + w, float(pts[:, 0].max())), max(y + h, float(pts[:, 1].max()))
    return (x0, y0, x1 - x0, y1 - y0)


def read_coco(json_path: str | Path, weight: float = 1.0, min_keypoints: int = 1) -> list[PersonRecord]:
    json_path = Path(json_path)
    d = json.loads(json_path.read_text())
    images = {im["id"]: im for im in d["images"]}
    out = []
    for a in d["annotations"]:
        if a.get("iscrowd", 0) or a.get("num_keypoints", 0) < min_keypoints:
            continue
        im = images[a["image_id"]]
        kp = np.asarray(a["keypoints"], np.float32).reshape(-1, 3)
        out.append(PersonRecord(str(json_path.parent / "images" / im["file_name"]), a["image_id"],
                                box_covering_keypoints(a["bbox"], kp), kp, weight, json_path.parent.name))
    return out


def split_of(rec: PersonRecord) -> str:
    """Fixed validation split by image, never seen by training: coco_mini whole, every 7th image of the
    hand-labelled sets (fashion_a, fashion_b, pelota). Pseudo-labelled sets are train only."""
    if rec.dataset == "coco_mini":
        return "val"
    if rec.dataset in ("fashion_a", "fashion_b", "pelota") and rec.image_id % 7 == 0:
        return "val"
    return "train"


HAND_SETS = ("fashion_a", "fashion_b", "pelota", "coco_mini")
PSEUDO_SETS = ("roboflow_people", "linagora_meeting", "yoga", "ccp_fashion", "vikram_people",
               "exercise_frames", "dance_frames")


def body_records(root: Path, pseudo_weight: float = 0.5) -> list[PersonRecord]:
    recs = []
    for s in HAND_SETS:
        recs += read_coco(root / "body" / s / "person_keypoints.json", 1.0)
    for s in PSEUDO_SETS:
        p = root / "body" / "pseudo" / s / "person_keypoints.json"
        if p.exists():
            recs += read_coco(p, pseudo_weight, min_keypoints=5)
    return recs


@dataclass
class CropCache:
    """images (M, S, S, 3) uint8 BGR; keypoints (M, K, 3) in cache px; boxes (M, 4) xywh in cache px;
    weights (M,) float32."""
    images: np.ndarray
    keypoints: np.ndarray
    boxes: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


def cache_region(box_xywh) -> CropBox:
    """Square region around a box, big enough for the crops augmentation cuts (scale up to ~1.35x of a
    1.25x-padded box, rotated)."""
    x, y, w, h = box_xywh
    side = CACHE_CONTEXT * max(w, h, 1.0)
    return CropBox((x + w / 2, y + h / 2), (side, side))


def build_cache(records: list[PersonRecord], cache_file: Path | None = None) -> CropCache:
    """Cut every record's region out of its photo (cached in `cache_file` as .npz keyed by the record list's
    photos and boxes). Loss weights always come from the records: a set re-weighted since the cache was cut keeps
    its crops and takes its new weights."""
    key = hashlib.sha1(json.dumps([(r.image_path, r.box_xywh) for r in records]).encode()).hexdigest()[:12]
    if cache_file is not None:
        f = Path(f"{cache_file}-{key}.npz")
        if f.exists():
            z = np.load(f)
            weights = np.array([r.weight for r in records], np.float32)
            return CropCache(z["images"], z["keypoints"], z["boxes"], weights)
    S = CACHE_SIZE
    imgs = np.empty((len(records), S, S, 3), np.uint8)
    imgs[:] = MEAN_BGR_U8
    kps = np.zeros((len(records),) + records[0].keypoints.shape, np.float32)
    boxes = np.zeros((len(records), 4), np.float32)
    last_path, img = None, None
    for i, r in enumerate(records):
        if r.image_path != last_path:
            img = cv2.imread(r.image_path, cv2.IMREAD_COLOR)
            last_path = r.image_path
            if img is None:
                log.warning("skipping unreadable image %s", r.image_path)
        if img is None:
            continue
        region = cache_region(r.box_xywh)
        m = crop_matrix(region, (S, S))
        imgs[i] = warp_crop(img, m, (S, S))
        kp = r.keypoints.copy()
        kp[:, :2] = apply_matrix(m, kp[:, :2])
        kps[i] = kp
        x, y, w, h = r.box_xywh
        corners = apply_matrix(m, np.array([[x, y], [x + w, y + h]]))
        boxes[i] = [*corners[0], *(corners[1] - corners[0])]
    weights = np.array([r.weight for r in records], np.float32)
    cache = CropCache(imgs, kps, boxes, weights)
    if cache_file is not None:
        Path(cache_file).parent.mkdir(parents=True, exist_ok=True)
        np.savez(f, images=imgs, keypoints=kps, boxes=boxes, weights=weights)
    return cache
