# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled heatmap decoders: the hot loops behind `poselive.codec.decode_heatmaps` and `find_peaks`.

The behaviour is defined by the numpy twins in poselive/codec.py (`decode_heatmaps_reference`,
`find_peaks_reference`); these must agree with them to 1e-4 px, border rules included (measured: to the bit,
on x86-64 with the default build flags). See codec.py's module docstring for the coordinate convention, the
local blur and the border rules.

Each decoder runs in three steps: find the peaks and blur each one's 3x3 neighbourhood (C, no GIL); take the
log of all the blurred neighbourhoods in one numpy call; take the Taylor step at each peak (C, no GIL). The
blur sums run in float64 in the twin's order (horizontal, then vertical; kernel taps in ascending order), and
the kernels and the log come from numpy as in the twin, because the C library's exp and log differ from
numpy's in the last bit.
"""
from functools import lru_cache

from libc.math cimport ceil, isfinite
from libc.stdlib cimport malloc, free

import numpy as np

cdef double LOG_FLOOR = 1e-10   # codec.LOG_FLOOR: the blurred heatmap is floored here before its log
cdef double DET_MIN = 1e-12     # the twin's negative-definite test: det > 1e-12 and dxx < 0


cdef inline Py_ssize_t _clamp(Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    if i < 0:
        return 0
    if i > n - 1:
        return n - 1
    return i


cdef inline double _clip1(double v) noexcept nogil:
    # Comparisons leave NaN as NaN, as np.clip does.
    if v < -1.0:
        return -1.0
    if v > 1.0:
        return 1.0
    return v


cdef Py_ssize_t _kernel_radius(double sigma) except -1:
    """codec.blur_radius: ceil(3 sigma), 0 (no blur) for sigma <= 0."""
    if not isfinite(sigma):
        raise ValueError(f"blur_sigma must be a finite number, got {sigma}")
    if sigma <= 0:
        return 0
    return <Py_ssize_t>ceil(3.0 * sigma)


cdef Py_ssize_t _radius_for(double sigma, Py_ssize_t H, Py_ssize_t W) except -1:
    """The largest blur radius any peak of an H x W map uses: _kernel_radius(sigma), but no more than
    (max(H, W) - 3) // 2, the most `_radius_inside` allows on that map. Sizing the kernels by it gives the
    same result and keeps their table (R + 1) x (2R + 1) small whatever sigma is (an unbounded one asked for
    53 GiB at sigma 20000)."""
    cdef Py_ssize_t R = _kernel_radius(sigma)
    cdef Py_ssize_t most = (max(H, W) - 3) // 2
    return max(min(R, most), 0)


@lru_cache(maxsize=16)
def _kernel_table(sigma, Py_ssize_t R):
    """codec.gaussian_kernel(sigma, r) for r = 0 .. R in the first 2r + 1 entries of row r: (R + 1, 2R + 1)
    float64, read-only. The twin's numpy expression, so that the kernels are its kernels to the bit."""
    cdef Py_ssize_t r
    table = np.zeros((R + 1, 2 * R + 1))
    table[0, 0] = 1.0
    for r in range(1, R + 1):
        k = np.exp(-np.arange(-r, r + 1, dtype=np.float64) ** 2 / (2 * sigma ** 2))
        table[r, :2 * r + 1] = k / k.sum()
    table.setflags(write=False)
    return table


cdef inline Py_ssize_t _radius_inside(Py_ssize_t i, Py_ssize_t n, Py_ssize_t R) noexcept nogil:
    """codec._radius_inside: min(R, i - 1, n - 2 - i), at least 0."""
    cdef Py_ssize_t r = R
    if i - 1 < r:
        r = i - 1
    if n - 2 - i < r:
        r = n - 2 - i
    return r if r > 0 else 0


cdef struct Scratch:
    # Working memory of `_blur_neighbourhood` for kernels up to radius R, allocated once per call of a decoder.
    double* rows    # (3 + 2R) x 3: the horizontal pass
    double* window  # 3 + 2R: one row of the window around the peak, as float64


cdef int _scratch_alloc(Scratch* s, Py_ssize_t R) noexcept nogil:
    s.rows = <double*>malloc((3 + 2 * R) * 3 * sizeof(double))
    s.window = <double*>malloc((3 + 2 * R) * sizeof(double))
    return 0 if (s.rows != NULL and s.window != NULL) else -1


cdef void _scratch_free(Scratch* s) noexcept nogil:
    free(s.rows)
    free(s.window)
    s.rows = NULL
    s.window = NULL


cdef void _blur_neighbourhood(const float* hm, Py_ssize_t H, Py_ssize_t W, Py_ssize_t x, Py_ssize_t y,
                              const double* kernels, Py_ssize_t R, Scratch* s, double* out) noexcept nogil:
    """The twin's blurred 3x3 neighbourhood B (before the log; codec._blurred_log_neighbourhoods) of the peak
    (x, y) of one C-contiguous map hm (H, W): out[3a + b] at row clamp(y-1+a), column clamp(x-1+b).

    kernels: `_kernel_table`'s rows, 2R + 1 apart. The horizontal pass covers the 3 + 2ry window rows
    y-1-ry .. y+1+ry at the 3 neighbourhood columns, whose taps fall in window columns x-1-rx .. x+1+rx; the
    clamps act only on a border peak, at radius 0, as in the twin.
    """
    cdef Py_ssize_t rx = _radius_inside(x, W, R)
    cdef Py_ssize_t ry = _radius_inside(y, H, R)
    cdef const double* kx = kernels + rx * (2 * R + 1)
    cdef const double* ky = kernels + ry * (2 * R + 1)
    cdef Py_ssize_t t, i, j, a
    cdef double h0, h1, h2
    cdef const double* top
    cdef const float* src
    cdef double* rows = s.rows
    cdef double* win = s.window

    for t in range(3 + 2 * ry):
        src = hm + _clamp(y - 1 - ry + t, H) * W
        for j in range(3 + 2 * rx):
            win[j] = <double>src[_clamp(x - 1 - rx + j, W)]
        # The three sums run side by side (independent dependency chains), each in the twin's order.
        h0 = 0.0
        h1 = 0.0
        h2 = 0.0
        for i in range(2 * rx + 1):
            h0 = h0 + kx[i] * win[i]
            h1 = h1 + kx[i] * win[i + 1]
            h2 = h2 + kx[i] * win[i + 2]
        rows[t * 3] = h0
        rows[t * 3 + 1] = h1
        rows[t * 3 + 2] = h2

    for a in range(3):
        top = rows + a * 3
        h0 = 0.0
        h1 = 0.0
        h2 = 0.0
        for j in range(2 * ry + 1):
            h0 = h0 + ky[j] * top[j * 3]
            h1 = h1 + ky[j] * top[j * 3 + 1]
            h2 = h2 + ky[j] * top[j * 3 + 2]
        out[a * 3] = h0
        out[a * 3 + 1] = h1
        out[a * 3 + 2] = h2


cdef void _taylor_step(const double* L, Py_ssize_t H, Py_ssize_t W, Py_ssize_t x, Py_ssize_t y,
                       float* out_xy) noexcept nogil:
    """codec._taylor_offsets for one peak: L[3a + b], the log-heatmap on its clamped 3x3 neighbourhood ->
    out_xy = (x + offset, y + offset) in heatmap px."""
    cdef double c, dx, dy, dxx, dyy, dxy, det, ox, oy
    cdef bint bx, by
    c = L[4]
    dx = 0.5 * (L[5] - L[3])
    dy = 0.5 * (L[7] - L[1])
    dxx = L[5] - 2 * c + L[3]
    dyy = L[7] - 2 * c + L[1]
    dxy = 0.25 * (L[8] - L[6] - L[2] + L[0])
    bx = x == 0 or x == W - 1
    by = y == 0 or y == H - 1
    det = dxx * dyy - dxy * dxy
    ox = 0.0
    oy = 0.0
    if det > DET_MIN and dxx < 0 and not bx and not by:
        ox = -(dyy * dx - dxy * dy) / det
        oy = -(dxx * dy - dxy * dx) / det
    # On a border pixel the clamped differences say nothing about the far side: 1-D step along the other axis.
    if bx and not by and dyy < 0:
        oy = -dy / dyy
    if by and not bx and dxx < 0:
        ox = -dx / dxx
    out_xy[0] = <float>(<double>x + _clip1(ox))
    out_xy[1] = <float>(<double>y + _clip1(oy))


def _floored_log(blurred):
    """np.log(np.maximum(blurred, LOG_FLOOR)), in place: numpy's log, as the twin's."""
    np.maximum(blurred, LOG_FLOOR, out=blurred)
    return np.log(blurred, out=blurred)


def _as_maps(hm, bint allow_empty=False):
    """Any (N, K, H, W) real array -> C-contiguous float32 (float16 is widened here). Maps of 0 px raise
    unless allow_empty (a map without pixels has no maximum, but it has no peaks either)."""
    a = np.ascontiguousarray(hm, dtype=np.float32)
    if a.ndim != 4:
        raise ValueError(f"heatmaps must have shape (N, K, H, W), got {a.shape}")
    if (a.shape[2] == 0 or a.shape[3] == 0) and not allow_empty:
        raise ValueError(f"heatmaps must be at least 1x1 px, got {a.shape[2]}x{a.shape[3]}")
    return a


def decode_heatmaps(hm, double blur_sigma=2.0):
    """One DARK-refined keypoint per heatmap.

    hm: (N, K, H, W) float32 (float16 accepted). Returns xy (N, K, 2) float32 heatmap px and scores (N, K)
    float32, each map's maximum (first in raster order; a NaN counts as the maximum, as np.argmax has it).
    """
    maps = _as_maps(hm)
    cdef const float[:, :, :, ::1] h = maps
    cdef Py_ssize_t N = h.shape[0], K = h.shape[1], H = h.shape[2], W = h.shape[3]
    cdef Py_ssize_t R = _radius_for(blur_sigma, H, W)
    cdef const double[:, ::1] kernels = _kernel_table(blur_sigma, R)
    xy_arr = np.zeros((N, K, 2), np.float32)
    scores_arr = np.zeros((N, K), np.float32)
    # Each map's maximum by numpy's argmax: its SIMD scan is several times faster than a scalar C loop, and
    # it is the twin's own argmax (first maximum, NaN first), so the two cannot disagree.
    peak_arr = np.ascontiguousarray(maps.reshape(N * K, H * W).argmax(1).reshape(N, K), dtype=np.intp)
    blurred_arr = np.zeros((N, K, 9))              # then its log: 3x3 per map, row-major
    cdef float[:, :, ::1] xy = xy_arr
    cdef float[:, ::1] scores = scores_arr
    cdef Py_ssize_t[:, ::1] peak = peak_arr
    cdef double[:, :, ::1] blurred = blurred_arr
    cdef Scratch scratch
    cdef Py_ssize_t n, m, bi
    cdef const float* one
    if N * K == 0:
        return xy_arr, scores_arr
    if _scratch_alloc(&scratch, R) != 0:
        _scratch_free(&scratch)
        raise MemoryError()
    try:
        with nogil:
            for n in range(N):
                for m in range(K):
                    one = &h[n, m, 0, 0]
                    bi = peak[n, m]
                    scores[n, m] = one[bi]
                    _blur_neighbourhood(one, H, W, bi % W, bi // W, &kernels[0, 0], R, &scratch,
                                        &blurred[n, m, 0])
    finally:
        _scratch_free(&scratch)
    _floored_log(blurred_arr)
    with nogil:
        for n in range(N):
            for m in range(K):
                bi = peak[n, m]
                _taylor_step(&blurred[n, m, 0], H, W, bi % W, bi // W, &xy[n, m, 0])
    return xy_arr, scores_arr


cdef inline bint _is_peak(const float* hm, Py_ssize_t H, Py_ssize_t W, Py_ssize_t i, Py_ssize_t j,
                          float threshold) noexcept nogil:
    """3x3 max-pool NMS: equal to the largest of its in-range neighbours (out of range counts as -inf) and
    above threshold. `not (v >= n)` also rejects a pixel next to a NaN, where the twin's max-pool is NaN."""
    cdef Py_ssize_t a, b
    cdef float v = hm[i * W + j]
    if not (v > threshold):
        return False
    for a in range(i - 1, i + 2):
        if a < 0 or a >= H:
            continue
        for b in range(j - 1, j + 2):
            if b < 0 or b >= W:
                continue
            if not (v >= hm[a * W + b]):
                return False
    return True


cdef inline float _max3(float a, float b, float c) noexcept nogil:
    if b > a:
        a = b
    if c > a:
        a = c
    return a


cdef bint _row_max3(const float* hm, Py_ssize_t H, Py_ssize_t W, float* out) noexcept nogil:
    """out[i, j] = max of hm[i, j-1 .. j+1] (in range only); False (out unset) if the map holds a NaN, where
    only the exact neighbour test (`_is_peak`) reproduces the twin's NaN-propagating max-pool."""
    cdef Py_ssize_t i, j
    cdef const float* row
    cdef float* o
    cdef bint nan = False
    for i in range(H * W):
        nan = nan | (hm[i] != hm[i])
    if nan:
        return False
    for i in range(H):
        row = hm + i * W
        o = out + i * W
        if W == 1:
            o[0] = row[0]
            continue
        o[0] = _max3(row[0], row[1], row[1])
        for j in range(1, W - 1):
            o[j] = _max3(row[j - 1], row[j], row[j + 1])
        o[W - 1] = _max3(row[W - 2], row[W - 1], row[W - 1])
    return True


cdef void _peak_mask(const float* hm, Py_ssize_t H, Py_ssize_t W, float threshold, float* hmax,
                     unsigned char* mask) noexcept nogil:
    """mask[i, j] = 1 where hm[i, j] is a peak (see `_is_peak`), else 0. hmax: scratch of H * W floats.

    Without NaNs the 3x3 max-pool is separable and branch-free (random-looking maps would otherwise
    mispredict a branch per pixel); a map holding a NaN takes the exact neighbour test.
    """
    cdef Py_ssize_t i, j
    cdef const float* row
    cdef const float* up
    cdef const float* mid
    cdef const float* down
    if not _row_max3(hm, H, W, hmax):
        for i in range(H):
            for j in range(W):
                mask[i * W + j] = _is_peak(hm, H, W, i, j, threshold)
        return
    for i in range(H):
        row = hm + i * W
        mid = hmax + i * W
        up = mid - W if i > 0 else mid
        down = mid + W if i < H - 1 else mid
        for j in range(W):
            mask[i * W + j] = (row[j] > threshold) & (row[j] == _max3(up[j], mid[j], down[j]))


def find_peaks(hm, double threshold=0.1, Py_ssize_t topk=20, double blur_sigma=2.0):
    """Several DARK-refined peaks per heatmap.

    hm: (N, K, H, W) float32 (float16 accepted). A peak equals the maximum of its 3x3 neighbourhood and is
    above `threshold`; the `topk` best per map are kept, by score descending then raster order. Returns xy
    (N, K, topk, 2) float32 heatmap px, scores (N, K, topk) float32 (0 past the count), counts (N, K) int32.
    """
    if topk < 0:
        raise ValueError(f"topk must be >= 0, got {topk}")
    maps = _as_maps(hm, allow_empty=True)
    if maps.shape[2] == 0 or maps.shape[3] == 0:  # no pixel, no peak: as the twin answers
        nk = maps.shape[:2]
        return np.zeros((*nk, topk, 2), np.float32), np.zeros((*nk, topk), np.float32), np.zeros(nk, np.int32)
    cdef const float[:, :, :, ::1] h = maps
    cdef Py_ssize_t N = h.shape[0], K = h.shape[1], H = h.shape[2], W = h.shape[3]
    cdef Py_ssize_t R = _radius_for(blur_sigma, H, W)
    cdef const double[:, ::1] kernels = _kernel_table(blur_sigma, R)
    xy_arr = np.zeros((N, K, topk, 2), np.float32)
    scores_arr = np.zeros((N, K, topk), np.float32)
    counts_arr = np.zeros((N, K), np.int32)
    peaks_arr = np.zeros((N, K, topk), np.intp)    # raster index of each kept peak
    cdef float[:, :, :, ::1] xy = xy_arr
    cdef float[:, :, ::1] scores = scores_arr
    cdef int[:, ::1] counts = counts_arr
    cdef Py_ssize_t[:, :, ::1] peaks = peaks_arr
    cdef double[:, ::1] blurred
    # the twin compares float32 maps with a Python float, which numpy casts to float32
    cdef float thr = <float>threshold
    cdef Scratch scratch
    # the current top list of one map, sorted by score descending then raster index ascending
    cdef float* top_val = <float*>malloc((topk + 1) * sizeof(float))
    cdef Py_ssize_t* top_idx = <Py_ssize_t*>malloc((topk + 1) * sizeof(Py_ssize_t))
    cdef float* hmax = <float*>malloc(H * W * sizeof(float))
    cdef unsigned char* mask = <unsigned char*>malloc(H * W)
    cdef Py_ssize_t n, m, i, p, q, count, at
    cdef const float* one
    cdef float v
    if _scratch_alloc(&scratch, R) != 0 or top_val == NULL or top_idx == NULL or hmax == NULL or mask == NULL:
        _scratch_free(&scratch)
        free(top_val)
        free(top_idx)
        free(hmax)
        free(mask)
        raise MemoryError()
    try:
        with nogil:
            for n in range(N):
                for m in range(K):
                    one = &h[n, m, 0, 0]
                    _peak_mask(one, H, W, thr, hmax, mask)
                    count = 0
                    for i in range(H * W):
                        if not mask[i]:
                            continue
                        v = one[i]
                        # Candidates arrive in raster order, so an equal score goes after the ones kept.
                        p = count
                        while p > 0 and top_val[p - 1] < v:
                            p -= 1
                        if p >= topk:
                            continue
                        q = count if count < topk else topk - 1
                        while q > p:
                            top_val[q] = top_val[q - 1]
                            top_idx[q] = top_idx[q - 1]
                            q -= 1
                        top_val[p] = v
                        top_idx[p] = i
                        if count < topk:
                            count += 1
                    for p in range(count):
                        peaks[n, m, p] = top_idx[p]
                        scores[n, m, p] = top_val[p]
                    counts[n, m] = <int>count
        blurred_arr = np.zeros((max(int(counts_arr.sum()), 1), 9))  # 3x3 per kept peak, then its log
        blurred = blurred_arr
        with nogil:
            at = 0
            for n in range(N):
                for m in range(K):
                    for p in range(counts[n, m]):
                        i = peaks[n, m, p]
                        _blur_neighbourhood(&h[n, m, 0, 0], H, W, i % W, i // W, &kernels[0, 0], R, &scratch,
                                            &blurred[at, 0])
                        at += 1
    finally:
        _scratch_free(&scratch)
        free(top_val)
        free(top_idx)
        free(hmax)
        free(mask)
    _floored_log(blurred_arr)
    with nogil:
        at = 0
        for n in range(N):
            for m in range(K):
                for p in range(counts[n, m]):
                    i = peaks[n, m, p]
                    _taylor_step(&blurred[at, 0], H, W, i % W, i // W, &xy[n, m, p, 0])
                    at += 1
    return xy_arr, scores_arr, counts_arr
