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
with them to 1e-4 px (measured: to the bit, on x86-64 with the default build flags). `POSELIVE_PURE_PYTHON=1`
selects the numpy twins.

The blur is local (both twins): the Newton step reads the blurred log-heatmap on the peak's 3x3 neighbourhood
only, so the blur is defined there alone (`_blurred_log_neighbourhoods` states it exactly). It is separable,
in float64, with a Gaussian kernel of radius R = ceil(3 blur_sigma) shrunk per peak and per axis to
r_x = max(0, min(R, x - 1, W - 2 - x)) (r_y likewise) and renormalised to sum 1, so it never reads outside the
map. (A whole-map blur that repeated the edge pixels pulled points 1-2 px from the border onto the border
pixel: 1.84 px off at (1.3, 1.3).)

Border rules (both twins): a neighbourhood pixel outside the map is read from the nearest edge pixel (clamped
index); a border peak's blur has radius 0 across that border. The 2-D Taylor step is taken only where the
Hessian is negative definite (det > 1e-12 and dxx < 0). On a border column (x = 0 or W-1) there is no x step
and y gets the 1-D step -dy/dyy when dyy < 0; likewise on a border row; on a corner, no step. Offsets are
clipped to [-1, 1] heatmap px.

Measured on 64x48 maps, target sigma 2, blur sigma 2: a clean target decodes within 1e-5 px where its peak
pixel is at least R + 1 = 7 px from the border, within 1e-3 px anywhere at least 1 px inside (a truncated
kernel's blur is not quite Gaussian), and nearer than 1 px up to 0.5 px off on an edge and 0.71 px in a corner
(a point that rounds onto a border pixel gets no step across the border: (0.5, 0.5) decodes onto the corner).
With noise of sd 0.05 the mean error is 0.05 px inside, 0.06-0.11 px at 1-3 px from the border and 0.24 px
within 1 px of it.
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
LOG_FLOOR = 1e-10  # the blurred heatmap is floored here before its log


def blur_radius(sigma: float) -> int:
    """Full radius of the DARK blur kernel, in heatmap px: ceil(3 sigma), 0 (no blur) for sigma <= 0."""
    if not math.isfinite(sigma):
        raise ValueError(f"blur_sigma must be a finite number, got {sigma}")
    return int(math.ceil(3 * sigma)) if sigma > 0 else 0


def gaussian_kernel(sigma: float, radius: int | None = None) -> np.ndarray:
    """1-D Gaussian exp(-d^2 / (2 sigma^2)) at d = -radius .. radius, normalised to sum 1: (2 radius + 1,)
    float64. radius defaults to `blur_radius(sigma)`; radius 0 or sigma <= 0 gives the identity [1]."""
    if radius is None:
        radius = blur_radius(sigma)
    if radius == 0 or sigma <= 0:
        return np.ones(1)
    k = np.exp(-np.arange(-radius, radius + 1, dtype=np.float64) ** 2 / (2 * sigma ** 2))
    return k / k.sum()


def _radius_inside(i: np.ndarray, n: int, radius: int) -> np.ndarray:
    """Per-peak blur radius along one axis of n px, at integer peak coordinates i (P,): the largest, up to
    `radius`, at which blurring pixels i-1, i, i+1 reads only pixels 0 .. n-1; 0 on and next to the border."""
    return np.clip(np.minimum(radius, np.minimum(i - 1, n - 2 - i)), 0, None)


def _blurred_log_neighbourhoods(maps: np.ndarray, m: np.ndarray, x: np.ndarray, y: np.ndarray,
                                blur_sigma: float) -> np.ndarray:
    """DARK's modulated log-heatmap on the 3x3 neighbourhood of each peak, blurred locally.

    maps (M, H, W) float32; peak p is pixel (x[p], y[p]) of map m[p], all (P,) int. Returns L (P, 3, 3) float64,
    L[p, a, b] = log(max(B[p, a, b], LOG_FLOOR)) at row v_a = clamp(y-1+a), column u_b = clamp(x-1+b), where

        B[p, a, b] = sum over j = -ry..ry of  ky[j] * (sum over i = -rx..rx of  kx[i] * map[v_a + j, u_b + i])

    (the horizontal sum first, each sum over its taps in ascending order, in float64), with the per-peak radii
    rx = max(0, min(R, x-1, W-2-x)), ry = max(0, min(R, y-1, H-2-y)), R = blur_radius(blur_sigma), and the
    truncated kernels kx = gaussian_kernel(blur_sigma, rx), ky = gaussian_kernel(blur_sigma, ry). So the blur
    never reads outside the map; only a border peak's neighbourhood is clamped (at radius 0 across it).
    """
    M, H, W = maps.shape
    R = blur_radius(blur_sigma)
    rx = _radius_inside(x, W, R)
    ry = _radius_inside(y, H, R)
    blurred = np.empty((len(m), 3, 3))
    # Peaks that share both radii are blurred together; away from the border that is all of them.
    for rx_g, ry_g in sorted(set(zip(rx.tolist(), ry.tolist()))):
        p = np.flatnonzero((rx == rx_g) & (ry == ry_g))
        # The (3 + 2 ry) x (3 + 2 rx) window the blur reads. Its clamp acts only at radius 0 on a border peak,
        # where the window is the clamped 3x3 neighbourhood itself.
        rows = np.clip(y[p, None] - 1 - ry_g + np.arange(3 + 2 * ry_g), 0, H - 1)
        cols = np.clip(x[p, None] - 1 - rx_g + np.arange(3 + 2 * rx_g), 0, W - 1)
        window = maps[m[p, None, None], rows[:, :, None], cols[:, None, :]].astype(np.float64)
        kx = gaussian_kernel(blur_sigma, rx_g)
        ky = gaussian_kernel(blur_sigma, ry_g)
        horizontal = sum(kx[i] * window[:, :, i:i + 3] for i in range(len(kx)))       # (S, 3 + 2 ry, 3)
        blurred[p] = sum(ky[j] * horizontal[:, j:j + 3, :] for j in range(len(ky)))   # (S, 3, 3)
    return np.log(np.maximum(blurred, LOG_FLOOR))


def _taylor_offsets(L: np.ndarray, x: np.ndarray, y: np.ndarray, H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    """Newton step of the log-heatmap around integer peaks (x, y) (P,) of H x W maps, from L (P, 3, 3), the
    log-heatmap on each peak's clamped 3x3 neighbourhood (see `_blurred_log_neighbourhoods`)."""
    c = L[:, 1, 1]
    dx = 0.5 * (L[:, 1, 2] - L[:, 1, 0])
    dy = 0.5 * (L[:, 2, 1] - L[:, 0, 1])
    dxx = L[:, 1, 2] - 2 * c + L[:, 1, 0]
    dyy = L[:, 2, 1] - 2 * c + L[:, 0, 1]
    dxy = 0.25 * (L[:, 2, 2] - L[:, 2, 0] - L[:, 0, 2] + L[:, 0, 0])
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
    if H == 0 or W == 0:  # no maximum to find; the compiled twin says the same
        raise ValueError(f"heatmaps must be at least 1x1 px, got {H}x{W}")
    maps = hm.reshape(N * K, H, W)
    flat = maps.reshape(N * K, H * W)
    idx = flat.argmax(1)
    scores = flat[np.arange(N * K), idx]
    y, x = np.divmod(idx, W)
    L = _blurred_log_neighbourhoods(maps, np.arange(N * K), x, y, blur_sigma)
    ox, oy = _taylor_offsets(L, x, y, H, W)
    xy = np.stack([x + ox, y + oy], -1).astype(np.float32).reshape(N, K, 2)
    return xy, scores.astype(np.float32).reshape(N, K)


def find_peaks_reference(heatmaps: np.ndarray, threshold: float = 0.1, topk: int = 20, blur_sigma: float = 2.0
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numpy twin of the compiled multi-peak finder. See `find_peaks`."""
    hm = np.asarray(heatmaps, np.float32)
    N, K, H, W = hm.shape
    M = N * K
    maps = hm.reshape(M, H, W)
    p = np.pad(maps, ((0, 0), (1, 1), (1, 1)), mode="constant", constant_values=-np.inf)
    pooled = np.max([p[:, dy:dy + H, dx:dx + W] for dy in range(3) for dx in range(3)], axis=0)
    is_peak = (maps == pooled) & (maps > np.float32(threshold))  # float32, as the compiled twin
    m, y, x = np.nonzero(is_peak)
    vals = maps[m, y, x]
    order = np.lexsort((y * W + x, -vals, m))  # per map: score descending, then raster order
    m, y, x, vals = m[order], y[order], x[order], vals[order]
    rank = np.arange(len(m)) - np.searchsorted(m, m)  # place in its map's list
    keep = rank < topk
    m, y, x, vals, rank = m[keep], y[keep], x[keep], vals[keep], rank[keep]
    L = _blurred_log_neighbourhoods(maps, m, x, y, blur_sigma)
    ox, oy = _taylor_offsets(L, x, y, H, W)
    xy = np.zeros((M, topk, 2), np.float32)
    scores = np.zeros((M, topk), np.float32)
    xy[m, rank, 0] = x + ox
    xy[m, rank, 1] = y + oy
    scores[m, rank] = vals
    counts = np.bincount(m, minlength=M).astype(np.int32)
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
        """heatmaps (N, K, h, w) -> xy (N, K, 2) float64 in input px, scores (N, K) float32 in [0, 1].

        A score is the heatmap's peak height. The targets peak at 1 (encode), but a network's output overshoots
        a little (up to 1.14 on vtest.avi) and dips below 0 where nothing is: clipped, it reads as the
        confidence that outputs promise."""
        xy, scores = decode_heatmaps(heatmaps, self.blur_sigma)
        return heatmap_to_input(xy, self.stride), np.clip(scores, 0.0, 1.0)
