"""Training-time augmentation of one cached person crop into a network input and its targets.

Geometry goes through poselive.transforms (the same affine inference inverts); keypoints follow the image
exactly, and a horizontal flip also swaps left/right joints with the schema's permutation.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from poselive.transforms import MEAN_BGR_U8, CropBox, apply_matrix, box_to_crop, crop_matrix, warp_crop


@dataclass(frozen=True)
class AugmentConfig:
    scale_range: tuple[float, float] = (0.75, 1.3)
    rotation_sigma_deg: float = 25.0
    rotation_prob: float = 0.6
    shift_fraction: float = 0.08
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    edge_cut_prob: float = 0.2
    occlusion_prob: float = 0.35
    blur_prob: float = 0.2
    noise_prob: float = 0.2
    gray_prob: float = 0.08


UPPER_BODY = tuple(range(0, 11))
LOWER_BODY = tuple(range(11, 17))
HEAD_AND_SHOULDERS = tuple(range(0, 7))


def half_body_box(kps: np.ndarray, rng: np.random.Generator, upper: tuple[int, ...], lower: tuple[int, ...],
                  closeup: tuple[int, ...] = HEAD_AND_SHOULDERS):
    """Box (xywh) around the labelled upper body, lower body or head and shoulders, or None if too few of
    those joints are labelled. The head-and-shoulders box reaches a random way down the chest: that is a
    webcam's framing and COCO's many close-ups, where the network, having seen whole bodies, squeezed a full
    skeleton into the face."""
    r = rng.random()
    is_closeup = r >= 0.75
    part = closeup if is_closeup else upper if r < 0.45 else lower
    pts = kps[list(part)]
    pts = pts[pts[:, 2] > 0, :2]
    if len(pts) < 3:
        return None
    lo, hi = pts.min(0), pts.max(0)
    if is_closeup:
        hi = hi + (0.0, rng.uniform(0.0, 0.8) * (hi[1] - lo[1]))
    c, wh = (lo + hi) / 2, np.maximum((hi - lo) * 1.3, 8.0)
    return (c[0] - wh[0] / 2, c[1] - wh[1] / 2, wh[0], wh[1])


def random_crop_box(box_xywh, kps: np.ndarray, input_wh, cfg: AugmentConfig, rng: np.random.Generator,
                    half_body: bool) -> CropBox:
    if half_body and rng.random() < cfg.half_body_prob:
        hb = half_body_box(kps, rng, UPPER_BODY, LOWER_BODY)
        if hb is not None:
            box_xywh = hb
    crop = box_to_crop(box_xywh, input_wh)
    s = rng.uniform(*cfg.scale_range)
    w, h = crop.size_wh[0] * s, crop.size_wh[1] * s
    dx, dy = rng.normal(0, cfg.shift_fraction, 2) * (w, h)
    rot = float(np.clip(rng.normal(0, cfg.rotation_sigma_deg), -60, 60)) if rng.random() < cfg.rotation_prob else 0.0
    return CropBox((crop.center_xy[0] + dx, crop.center_xy[1] + dy), (w, h), rot, bool(rng.random() < cfg.flip_prob))


def photometric(img: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    x = img.astype(np.float32)
    # brightness, contrast, saturation
    x = x * rng.uniform(0.65, 1.35) + rng.uniform(-25, 25)
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.7, 1.3) + mean
    gray = x.mean(2, keepdims=True)
    sat = 0.0 if rng.random() < cfg.gray_prob else rng.uniform(0.6, 1.4)
    x = gray + (x - gray) * sat
    if rng.random() < cfg.noise_prob:
        x += rng.normal(0, rng.uniform(2, 10), x.shape)
    x = np.clip(x, 0, 255).astype(np.uint8)
    if rng.random() < cfg.blur_prob:
        k = int(rng.choice([3, 5]))
        x = cv2.GaussianBlur(x, (k, k), 0)
    return x


def occlude(img: np.ndarray, rng: np.random.Generator, donor: np.ndarray | None) -> None:
    """Paste a rectangle of another photo (or a flat colour) over part of the crop, in place: the network must
    then guess hidden joints from context, as with a table, a bag or another person in front."""
    H, W = img.shape[:2]
    h = int(H * rng.uniform(0.12, 0.4))
    w = int(W * rng.uniform(0.15, 0.5))
    y, x = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
    if donor is not None and rng.random() < 0.7:
        dy, dx = int(rng.integers(0, donor.shape[0] - h + 1)), int(rng.integers(0, donor.shape[1] - w + 1))
        img[y:y + h, x:x + w] = donor[dy:dy + h, dx:dx + w]
    else:
        img[y:y + h, x:x + w] = rng.integers(0, 256, 3, dtype=np.uint8)


def cut_at_frame_edge(img: np.ndarray, kps: np.ndarray, rng: np.random.Generator) -> None:
    """Make the crop end where a camera's frame would, in place: everything beyond a random line (the bottom,
    or less often a side) becomes the fill colour inference pads outside the image with, and the joints
    there become unlabelled. A webcam shows head and shoulders with the body cut by the frame's bottom edge;
    COCO's truncated people too. Without this the network had only seen bodies that go on, and in a close-up
    found the face and little else."""
    H, W = img.shape[:2]
    side = rng.choice(["bottom", "left", "right"], p=[0.7, 0.15, 0.15])
    if side == "bottom":
        y = int(H * rng.uniform(0.45, 0.9))
        img[y:] = MEAN_BGR_U8
        kps[kps[:, 1] > y - 0.5, 2] = 0
    elif side == "left":
        x = int(W * rng.uniform(0.1, 0.35))
        img[:, :x] = MEAN_BGR_U8
        kps[kps[:, 0] < x - 0.5, 2] = 0
    else:
        x = int(W * rng.uniform(0.65, 0.9))
        img[:, x:] = MEAN_BGR_U8
        kps[kps[:, 0] > x - 0.5, 2] = 0


def augment_person(image: np.ndarray, box_xywh, kps: np.ndarray, input_wh, flip_perm: np.ndarray,
                   cfg: AugmentConfig, rng: np.random.Generator, donor: np.ndarray | None = None,
                   half_body: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One training sample. image: uint8 BGR (any size); kps (K, 3) in that image's px.

    Returns crop (H, W, 3) uint8 BGR at input_wh and keypoints (K, 3) in crop px (v = 0 where unlabelled)."""
    crop = random_crop_box(box_xywh, kps, input_wh, cfg, rng, half_body)
    m = crop_matrix(crop, input_wh)
    out = warp_crop(image, m, input_wh)
    k = kps.astype(np.float64).copy()
    k[:, :2] = apply_matrix(m, k[:, :2])
    if crop.flip:
        k = k[flip_perm]
    out = photometric(out, cfg, rng)
    if rng.random() < cfg.edge_cut_prob:
        cut_at_frame_edge(out, k, rng)
    if rng.random() < cfg.occlusion_prob:
        occlude(out, rng, donor)
    return out, k
