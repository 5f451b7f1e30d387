"""Person-finding data: whole images with every person box, letterboxed into a square cache, and an
augmentation that makes scenes of several people at many sizes (random zoom, and 2x2 mosaics of four photos
for small people and crowds)."""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from poselive.train.augment import AugmentConfig, photometric
from poselive.transforms import MEAN_BGR_U8, CropBox, apply_matrix, crop_matrix, letterbox_matrix, warp_crop

log = logging.getLogger(__name__)

DET_CACHE_SIZE = 320

# Sets where every person in an image has a box (single_label pseudo sets do not: left out).
DET_HAND_SETS = ("fashion_a", "fashion_b", "pelota", "coco_mini")
DET_PSEUDO_SETS = ("roboflow_people", "linagora_meeting")
# Street scenes with every pedestrian boxed (boxes only): small people. A box under this many px tall (at the
# set's 512x256) is painted over like a crowd region: too few pixels to learn a person from, and taught as
# background it would teach the network that people are background.
CITYPERSONS_MIN_HEIGHT_PX = 12.0
# Photos with nobody in them (rooms, buildings, landscapes): every pixel says "no person here". Every
# NEGATIVE_VAL_EVERY-th photo of each scene class is held out for validation and for `poselive eval`.
NEGATIVE_SETS = ("scene15",)
NEGATIVE_VAL_EVERY = 5


@dataclass(frozen=True)
class ImageBoxes:
    image_path: str
    image_id: int
    boxes_xywh: np.ndarray   # (M, 4) image px
    ignore_xywh: np.ndarray  # (M', 4) crowd regions: no loss is wanted there
    dataset: str


def read_image_boxes(json_path: Path) -> list[ImageBoxes]:
    d = json.loads(Path(json_path).read_text())
    by_img: dict[int, list] = {im["id"]: [] for im in d["images"]}
    crowd: dict[int, list] = {im["id"]: [] for im in d["images"]}
    for a in d["annotations"]:
        (crowd if a.get("iscrowd", 0) else by_img)[a["image_id"]].append(a["bbox"])
    out = []
    for im in d["images"]:
        if im.get("single_label"):
            continue
        out.append(ImageBoxes(str(Path(json_path).parent / "images" / im["file_name"]), im["id"],
                              np.asarray(by_img[im["id"]], np.float32).reshape(-1, 4),
                              np.asarray(crowd[im["id"]], np.float32).reshape(-1, 4), Path(json_path).parent.name))
    return out


def det_split_of(item: ImageBoxes) -> str:
    """Same rule as the keypoint split (coco_data.split_of): coco_mini and every 7th hand-labelled image; also
    every 7th CityPersons scene and every NEGATIVE_VAL_EVERY-th empty photo."""
    if item.dataset == "coco_mini":
        return "val"
    if item.dataset in ("fashion_a", "fashion_b", "pelota", "citypersons") and item.image_id % 7 == 0:
        return "val"
    if item.dataset in NEGATIVE_SETS and item.image_id % NEGATIVE_VAL_EVERY == 0:
        return "val"
    return "train"


def negative_images(root: Path, name: str = "scene15") -> list[Path]:
    """The photos of an empty-scene set (root/negatives/NAME/<class>/*.jpg), in a fixed order: by class, then
    file name. The split (det_split_of) counts in this order."""
    base = Path(root) / "negatives" / name
    return sorted(p for p in base.glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def negative_split(root: Path, split: str, name: str = "scene15") -> list[Path]:
    """The empty photos of one split ('train' or 'val') of an empty-scene set."""
    return [Path(it.image_path) for it in negative_items(root, name) if det_split_of(it) == split]


def negative_items(root: Path, name: str = "scene15") -> list[ImageBoxes]:
    empty = np.zeros((0, 4), np.float32)
    return [ImageBoxes(str(p), i, empty, empty, name) for i, p in enumerate(negative_images(root, name))]


def citypersons_items(root: Path) -> list[ImageBoxes]:
    items = []
    for it in read_image_boxes(root / "body" / "citypersons" / "person_keypoints.json"):
        small = it.boxes_xywh[:, 3] < CITYPERSONS_MIN_HEIGHT_PX
        items.append(ImageBoxes(it.image_path, it.image_id, it.boxes_xywh[~small],
                                np.concatenate([it.ignore_xywh, it.boxes_xywh[small]]), it.dataset))
    return items


def det_items(root: Path) -> list[ImageBoxes]:
    items = []
    for s in DET_HAND_SETS:
        items += read_image_boxes(root / "body" / s / "person_keypoints.json")
    for s in DET_PSEUDO_SETS:
        p = root / "body" / "pseudo" / s / "person_keypoints.json"
        if p.exists():
            items += read_image_boxes(p)
    if (root / "body" / "citypersons" / "person_keypoints.json").exists():
        items += citypersons_items(root)
    for s in NEGATIVE_SETS:
        items += negative_items(root, s)
    return items


@dataclass
class DetCache:
    images: np.ndarray          # (M, S, S, 3) uint8
    boxes: list[np.ndarray]     # per image (B, 4) xywh in cache px
    empty: np.ndarray | None = None   # (M,) bool: a photo known to show nobody (a negative set)

    def __len__(self) -> int:
        return len(self.images)


def build_det_cache(items: list[ImageBoxes], cache_file: Path | None = None) -> DetCache:
    key = hashlib.sha1(json.dumps([i.image_path for i in items]).encode()).hexdigest()[:12]
    f = Path(f"{cache_file}-{key}.npz") if cache_file else None
    if f is not None and f.exists():
        z = np.load(f, allow_pickle=False)
        offs = z["offsets"]
        return DetCache(z["images"], [z["boxes"][offs[i]:offs[i + 1]] for i in range(len(offs) - 1)],
                        _empty_flags(items))
    S = DET_CACHE_SIZE
    imgs = np.empty((len(items), S, S, 3), np.uint8)
    imgs[:] = MEAN_BGR_U8
    boxes = []
    for i, it in enumerate(items):
        img = cv2.imread(it.image_path, cv2.IMREAD_COLOR)
        if img is None:
            log.warning("skipping unreadable image %s", it.image_path)
            boxes.append(np.zeros((0, 4), np.float32))
            continue
        m = letterbox_matrix((img.shape[1], img.shape[0]), S)
        imgs[i] = warp_crop(img, m, (S, S))
        # Crowd regions are painted over with the mean colour: no person may be found there, none is asked.
        for b in it.ignore_xywh:
            p = apply_matrix(m, np.array([[b[0], b[1]], [b[0] + b[2], b[1] + b[3]]])).round().astype(int)
            imgs[i, max(p[0, 1], 0):p[1, 1], max(p[0, 0], 0):p[1, 0]] = MEAN_BGR_U8
        b = it.boxes_xywh
        tl = apply_matrix(m, b[:, :2])
        br = apply_matrix(m, b[:, :2] + b[:, 2:])
        boxes.append(np.c_[tl, br - tl].astype(np.float32))
    cache = DetCache(imgs, boxes, _empty_flags(items))
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        offs = np.cumsum([0] + [len(b) for b in boxes])
        np.savez(f, images=imgs, boxes=np.concatenate(boxes) if boxes else np.zeros((0, 4)), offsets=offs)
    return cache


def _empty_flags(items: list[ImageBoxes]) -> np.ndarray:
    return np.array([it.dataset in NEGATIVE_SETS for it in items], bool)


def _place(cache: DetCache, i: int, out_wh, region_xywh, rng, flip: bool):
    """Warp cache image i so that a random zoomed window lands in region_xywh of the output canvas."""
    rx, ry, rw, rh = region_xywh
    S = cache.images.shape[1]
    zoom = rng.uniform(0.35, 1.25)  # fraction of the cache image the window spans
    side = S * zoom
    cx, cy = rng.uniform(side / 2 - S * 0.1, S - side / 2 + S * 0.1, 2) if side < S else (rng.uniform(0, S, 2))
    aspect = rw / rh
    crop = CropBox((float(cx), float(cy)), (side * max(aspect, 1), side / min(aspect, 1)), 0.0, flip)
    m = crop_matrix(crop, (int(rw), int(rh)))
    m[:, 2] += (rx, ry)
    return m


def augment_scene(cache: DetCache, rng: np.random.Generator, out_wh: tuple[int, int], aug: AugmentConfig,
                  mosaic_prob: float = 0.4, draw_p: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One training scene: (H, W, 3) uint8 and person boxes (B, 4) xywh in its px. draw_p: (M,) probability of
    drawing each cache image (None: uniform); hard-negative mining raises it for photos the detector sees
    people in."""
    W, H = out_wh
    canvas = np.empty((H, W, 3), np.uint8)
    canvas[:] = MEAN_BGR_U8
    boxes = []
    if rng.random() < mosaic_prob:
        sx, sy = int(W * rng.uniform(0.3, 0.7)), int(H * rng.uniform(0.3, 0.7))
        regions = [(0, 0, sx, sy), (sx, 0, W - sx, sy), (0, sy, sx, H - sy), (sx, sy, W - sx, H - sy)]
    else:
        regions = [(0, 0, W, H)]
    for reg in regions:
        if reg[2] < 8 or reg[3] < 8:
            continue
        i = int(rng.integers(len(cache))) if draw_p is None else int(rng.choice(len(cache), p=draw_p))
        m = _place(cache, i, out_wh, reg, rng, bool(rng.random() < 0.5))
        part = cv2.warpAffine(cache.images[i], m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=MEAN_BGR_U8)
        x, y, w, h = reg
        canvas[y:y + h, x:x + w] = part[y:y + h, x:x + w]
        b = cache.boxes[i]
        if len(b):
            corners = np.stack([b[:, :2], b[:, :2] + b[:, 2:] * (1, 0), b[:, :2] + b[:, 2:] * (0, 1),
                                b[:, :2] + b[:, 2:]], 1)
            p = apply_matrix(m, corners)
            lo, hi = p.min(1), p.max(1)
            full = (hi - lo).prod(1)
            lo_c = np.maximum(lo, (x, y))
            hi_c = np.minimum(hi, (x + w, y + h))
            vis = np.clip(hi_c - lo_c, 0, None).prod(1)
            # Keep a person whose box is still mostly inside the region, clipped to it.
            keep = (vis > 0.45 * np.maximum(full, 1e-6)) & ((hi_c - lo_c).min(1) >= 2)
            boxes.append(np.c_[lo_c[keep], (hi_c - lo_c)[keep]])
    img = photometric(canvas, aug, rng)
    return img, (np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32))
