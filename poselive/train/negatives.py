"""Photos with nobody in them, for teaching networks what is not a person: a cache of letterboxed photos, and
random crops cut from them the way a person crop is cut (the keypoint network learns to answer a crop with no
person with empty heatmaps, so its person score stays low there)."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import cv2
import numpy as np

from poselive.train.augment import AugmentConfig, photometric
from poselive.transforms import CropBox, crop_matrix, letterbox_matrix, warp_crop

log = logging.getLogger(__name__)

NEGATIVE_CACHE_SIZE = 256


def build_negative_cache(paths: list[Path], cache_file: Path | None = None, size: int = NEGATIVE_CACHE_SIZE
                         ) -> np.ndarray:
    """(N, size, size, 3) uint8: each readable photo letterboxed whole (mean colour around it)."""
    key = hashlib.sha1(json.dumps([str(p) for p in paths]).encode()).hexdigest()[:12]
    f = Path(f"{cache_file}-{key}.npy") if cache_file else None
    if f is not None and f.exists():
        return np.load(f)
    out = []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            log.warning("skipping unreadable image %s", p)
            continue
        out.append(warp_crop(img, letterbox_matrix((img.shape[1], img.shape[0]), size), (size, size)))
    images = np.stack(out) if out else np.zeros((0, size, size, 3), np.uint8)
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        np.save(f, images)
    return images


def negative_crop(images: np.ndarray, rng: np.random.Generator, input_wh: tuple[int, int],
                  aug: AugmentConfig) -> np.ndarray:
    """A random person-shaped crop (the input's aspect, 15-100% of the photo's side) of a random cached photo,
    at input_wh, with the photometric augmentation positives get."""
    S = images.shape[1]
    img = images[int(rng.integers(len(images)))]
    h = S * rng.uniform(0.15, 1.0)
    w = h * input_wh[0] / input_wh[1]
    c = rng.uniform(0, S, 2)
    m = crop_matrix(CropBox((float(c[0]), float(c[1])), (w, h), float(rng.normal(0, 10)), bool(rng.random() < 0.5)),
                    input_wh)
    return photometric(warp_crop(img, m, input_wh), aug, rng)

