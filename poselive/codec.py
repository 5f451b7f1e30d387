"""Keypoints <-> heatmaps: the training targets and their decoding, with the coordinate convention in one place.

Convention: heatmap pixel j covers input pixels [stride*j, stride*j + stride - 1] (what a stack of 2x2
poolings does), so in pixel-centre coordinates `x_heatmap = (x_input + 0.5) / stride - 0.5`. Encoding puts the
Gaussian's centre at that exact sub-pixel location and decoding inverts it, so the pair is unbiased (the point
of UDP, Huang et al. 2020).

Decoding is DARK (Zhang et al. 2020): take each heatmap's maximum, modulate the heatmap with a Gaussian
(blur), take its log, and move from the maximum by one Newton step of the second-order Taylor expansion. A
Gaussian's log is a quadratic, so on a clean target the step lands exactly on the encoded point.

The hot loops live in the compiled `poselive._decode` (cython_ext/_decode.pyx). The numpy functions here,
`decode_heatmaps_reference` and `find_peaks_reference`, define the behaviour; the compiled twins must agree
with them to 1e-4 px. `POSELIVE_PURE_PYTHON=1` selects the numpy twins.

Border rule (both twins): the blur and the finite differences read out-of-range pixels from the nearest edge
pixel (clamped index). The 2-D Taylor step is taken only where the Hessian is negative definite
(det > 1e-12 and dxx < 0). On a border column (x = 0 or W-1) there is no x step and y gets the 1-D step
-dy/dyy when dyy < 0; likewise on a border row; on a corner, no step. Offsets are clipped to [-1, 1] heatmap
px. The clamped blur biases points within about 2 blur sigmas of the border (up to ~0.6 px at 2 px from it);
elsewhere a clean Gaussian target decodes to within 1e-3 px.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

_compiled = None
if not os.environ.get("POSELIVE_PURE_PYTHON"):
    try:
        from poselive import _decode as _compiled  # type: ignore[attr-defined]
    except ImportError:  # the extension was not built: say so once, then use the numpy twin
        log.warning("poselive: compiled decoder not found, using the numpy reference (slower); "
                    "build it with `pip install -e .`")

IMPLEMENTATION = "cython" if _compiled is not None else "numpy"


# ----------------------------------------------------------------------------------------------- encoding
def input_to_heatmap(xy: np.ndarray, stride: int) -> np.ndarray:
    return (np.asarray(xy, np.float64) + 0.5) / stride - 0.5


def heatmap_to_input(xy: np.ndarray, stride: int) -> np.ndarray:
    return (np.asarray(xy, np.float64) + 0.5) * stride - 0.5


def image_to_heatmap_matrix(image_to_input: np.ndarray, stride: int) -> np.ndarray:
    """Compose a 2x3 affine (image px -> input px) with `input_to_heatmap`: image px -> heatmap px."""
    m = np.asarray(image_to_input, np.float64) / stride
    m[:, 2] += 0.5 / stride - 0.5
    return m


def encode_gaussian(xy_hm: np.ndarray, visible: np.ndarray, heatmap_wh: tuple[int, int], sigma: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian targets centred at sub-pixel points.

    xy_hm: (K, 2) in heatmap px; visible: (K,) bool (labelled). Returns heatmaps (K, H, W) float32 with peak 1 at
    the point, and weights (K,) float32: 1 for a labelled point inside the heatmap, else 0 (its map is all 0).
    """
    w, h = heatmap_wh
    xy_hm = np.asarray(xy_hm, np.float64)
    inside = ((xy_hm[:, 0] >= -0.5) & (xy_hm[:, 0] <= w - 0.5) & (xy_hm[:, 1] >= -0.5) & (xy_hm[:, 1] <= h - 0.5))
    weights = (np.asarray(visible, bool) & inside & np.isfinite(xy_hm).all(1)).astype(np.float32)
    xs = np.arange(w, dtype=np.float64)
    ys = np.arange(h, dtype=np.float64)
    gx = np.exp(-((xs[None, :] - xy_hm[:, :1]) ** 2) / (2 * sigma ** 2))  # (K, W)
    gy = np.exp(-((ys[None, :] - xy_hm[:, 1:]) ** 2) / (2 * sigma ** 2))  # (K, H)
    maps = (gy[:, :, None] * gx[:, None, :]).astype(np.float32)
    maps[weights == 0] = 0.0  # also clears the NaN maps of non-finite points (NaN * 0 is NaN)
    return maps, weights


# ------------------------------------------------------------------------------------ numpy reference twins
def gaussian_kernel(sigma: float) -> np.ndarray:
    """1-D Gaussian of radius ceil(3 sigma), summing to 1 (float64). sigma <= 0 gives the identity [1]."""
    if sigma <= 0:
        return np.ones(1)
    r = int(math.ceil(3 * sigma))
    k = np.exp(-np.arange(-r, r + 1, dtype=np.float64) ** 2 / (2 * sigma ** 2))
    return k / k.sum()


def _blur_clamped(hm: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur over the last two axes, edge pixels repeated (float64)."""
    k = gaussian_kernel(sigma)
    r = len(k) // 2
    if r == 0:
        return hm.astype(np.float64)
    pad = [(0, 0)] * (hm.ndim - 2) + [(r, r), (r, r)]
    p = np.pad(hm.astype(np.float64), pad, mode="edge")
    H, W = hm.shape[-2:]
    rows = sum(k[i] * p[..., :, i:i + W] for i in range(len(k)))
    return sum(k[i] * rows[..., i:i + H, :] for i in range(len(k)))


def _taylor_offsets(logmap: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Newton step of the log-heatmap around integer points (x, y). logmap (M, H, W); x, y (M,) int."""
    M, H, W = logmap.shape
    m = np.arange(M)
    xm, xp = np.clip(x - 1, 0, W - 1), np.clip(x + 1, 0, W - 1)
    ym, yp = np.clip(y - 1, 0, H - 1), np.clip(y + 1, 0, H - 1)
    c = logmap[m, y, x]
    dx = 0.5 * (logmap[m, y, xp] - logmap[m, y, xm])
    dy = 0.5 * (logmap[m, yp, x] - logmap[m, ym, x])
    dxx = logmap[m, y, xp] - 2 * c + logmap[m, y, xm]
    dyy = logmap[m, yp, x] - 2 * c + logmap[m, ym, x]
    dxy = 0.25 * (logmap[m, yp, xp] - logmap[m, yp, xm] - logmap[m, ym, xp] + logmap[m, ym, xm])
    # On a border pixel the clamped differences say nothing about the far side, so that axis gets no step and
    # the other axis a 1-D step.
    bx = (x == 0) | (x == W - 1)
    by = (y == 0) | (y == H - 1)
    det = dxx * dyy - dxy * dxy
    ok = (det > 1e-12) & (dxx < 0) & ~bx & ~by
    safe = np.where(ok, det, 1.0)
    ox = np.where(ok, -(dyy * dx - dxy * dy) / safe, 0.0)
    oy = np.where(ok, -(dxx * dy - dxy * dx) / safe, 0.0)
    only_y = bx & ~by & (dyy < 0)
    only_x = by & ~bx & (dxx < 0)
    oy = np.where(only_y, -dy / np.where(only_y, dyy, -1.0), oy)
    ox = np.where(only_x, -dx / np.where(only_x, dxx, -1.0), ox)
    return np.clip(ox, -1, 1), np.clip(oy, -1, 1)


def decode_heatmaps_reference(heatmaps: np.ndarray, blur_sigma: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Numpy twin of the compiled decoder. See `decode_heatmaps`."""
    hm = np.asarray(heatmaps, np.float32)
    N, K, H, W = hm.shape
    flat = hm.reshape(N * K, H * W)
    idx = flat.argmax(1)
    scores = flat[np.arange(N * K), idx]
    y, x = np.divmod(idx, W)
    logmap = np.log(np.maximum(_blur_clamped(hm.reshape(N * K, H, W), blur_sigma), 1e-10))
    ox, oy = _taylor_offsets(logmap, x, y)
    xy = np.stack([x + ox, y + oy], -1).astype(np.float32).reshape(N, K, 2)
    return xy, scores.astype(np.float32).reshape(N, K)


def find_peaks_reference(heatmaps: np.ndarray, threshold: float = 0.1, topk: int = 20, blur_sigma: float = 2.0
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numpy twin of the compiled multi-peak finder. See `find_peaks`."""
    hm = np.asarray(heatmaps, np.float32)
    N, K, H, W = hm.shape
    M = N * K
    flat_maps = hm.reshape(M, H, W)
    p = np.pad(flat_maps, ((0, 0), (1, 1), (1, 1)), mode="constant", constant_values=-np.inf)
    pooled = np.max([p[:, dy:dy + H, dx:dx + W] for dy in range(3) for dx in range(3)], axis=0)
    is_peak = (flat_maps == pooled) & (flat_maps > np.float32(threshold))  # float32, as the compiled twin
    xy = np.zeros((M, topk, 2), np.float32)
    scores = np.zeros((M, topk), np.float32)
    counts = np.zeros(M, np.int32)
    logmap = None
    for m in range(M):
        cand = np.flatnonzero(is_peak[m])
        if cand.size == 0:
            continue
        vals = flat_maps[m].ravel()[cand]
        order = np.lexsort((cand, -vals))[:topk]  # score descending, then raster order
        cand = cand[order]
        if logmap is None:
            logmap = np.log(np.maximum(_blur_clamped(flat_maps, blur_sigma), 1e-10))
        y, x = np.divmod(cand, W)
        ox, oy = _taylor_offsets(np.broadcast_to(logmap[m], (len(cand), H, W)), x, y)
        n = len(cand)
        xy[m, :n, 0] = x + ox
        xy[m, :n, 1] = y + oy
        scores[m, :n] = vals[order]
        counts[m] = n
    return xy.reshape(N, K, topk, 2), scores.reshape(N, K, topk), counts.reshape(N, K)


# ----------------------------------------------------------------------------------------- public decoders
def decode_heatmaps(heatmaps: np.ndarray, blur_sigma: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """One keypoint per heatmap, DARK-refined.

    heatmaps: (N, K, H, W) float32 or float16. Returns xy (N, K, 2) float32 in heatmap px and scores (N, K)
    float32 (the heatmap's maximum).
    """
    if _compiled is None:
        return decode_heatmaps_reference(heatmaps, blur_sigma)
    hm = np.ascontiguousarray(heatmaps, dtype=np.float32)
    return _compiled.decode_heatmaps(hm, float(blur_sigma))


def find_peaks(heatmaps: np.ndarray, threshold: float = 0.1, topk: int = 20, blur_sigma: float = 2.0
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Several peaks per heatmap (for centre maps that hold several people).

    A peak is a pixel equal to the maximum of its 3x3 neighbourhood (3x3 max-pool NMS) and above `threshold`.
    Per map the `topk` best are kept, by score then raster order, each DARK-refined. Returns xy
    (N, K, topk, 2) float32 heatmap px, scores (N, K, topk) float32 (0 past the count), counts (N, K) int32.
    """
    if _compiled is None:
        return find_peaks_reference(heatmaps, threshold, topk, blur_sigma)
    hm = np.ascontiguousarray(heatmaps, dtype=np.float32)
    return _compiled.find_peaks(hm, float(threshold), int(topk), float(blur_sigma))


@dataclass(frozen=True)
class HeatmapCodec:
    """Keypoints in crop (input) px <-> heatmaps, for one network input size.

    input_wh: network input (W, H) px; stride: input px per heatmap px; sigma: target Gaussian's sigma in
    heatmap px; blur_sigma: DARK modulation's sigma in heatmap px.
    """
    input_wh: tuple[int, int]
    stride: int = 4
    sigma: float = 2.0
    blur_sigma: float = 2.0

    @property
    def heatmap_wh(self) -> tuple[int, int]:
        return (-(-self.input_wh[0] // self.stride), -(-self.input_wh[1] // self.stride))

    def encode(self, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """keypoints (K, 3): x, y in input px and visibility (>0 = labelled). -> heatmaps (K,h,w), weights (K,)."""
        kp = np.asarray(keypoints, np.float64)
        return encode_gaussian(input_to_heatmap(kp[:, :2], self.stride), kp[:, 2] > 0, self.heatmap_wh,
                               self.sigma)

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """heatmaps (N, K, h, w) -> xy (N, K, 2) float64 in input px, scores (N, K) float32."""
        xy, scores = decode_heatmaps(heatmaps, self.blur_sigma)
        return heatmap_to_input(xy, self.stride), scores
