# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled heatmap decoders: the hot loops behind `poselive.codec.decode_heatmaps` and `find_peaks`.

The behaviour is defined by the numpy twins in poselive/codec.py (`decode_heatmaps_reference`,
`find_peaks_reference`); these must agree with them to 1e-4 px, border rules included. See codec.py's module
docstring for the coordinate convention and the border rules.

Why it is fast: DARK needs the blurred log-heatmap only on the 3x3 neighbourhood of each peak, so the blur is
evaluated there alone (horizontal pass over the 3 + 2r rows around the peak for the 3 columns, then the
vertical pass), instead of blurring the whole map as the numpy twin does. The sums run in float64 in the
twin's order (horizontal, then vertical; kernel taps left to right).
"""
from libc.math cimport ceil, exp, log, isfinite
from libc.stdlib cimport malloc, free

import numpy as np

cdef double LOG_FLOOR = 1e-10   # the twin's np.maximum(blur, 1e-10) before the log
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
    """Radius of codec.gaussian_kernel: ceil(3 sigma), 0 (identity) for sigma <= 0."""
    if not isfinite(sigma):
        raise ValueError(f"blur_sigma must be a finite number, got {sigma}")
    if sigma <= 0:
        return 0
    return <Py_ssize_t>ceil(3.0 * sigma)


cdef void _fill_kernel(double* k, Py_ssize_t r, double sigma) noexcept nogil:
    """codec.gaussian_kernel into k[0 .. 2r]: exp(-d^2 / (2 sigma^2)) normalised to sum 1."""
    cdef Py_ssize_t i
    cdef double d, total = 0.0
    if r == 0:
        k[0] = 1.0
        return
    for i in range(2 * r + 1):
        d = <double>(i - r)
        k[i] = exp(-(d * d) / (2.0 * sigma * sigma))
        total += k[i]
    for i in range(2 * r + 1):
        k[i] = k[i] / total


cdef inline double _floored_log(double v) noexcept nogil:
    # np.log(np.maximum(v, 1e-10)): a NaN fails the test and stays NaN, as np.maximum keeps it
    if v < LOG_FLOOR:
        v = LOG_FLOOR
    return log(v)


cdef struct Scratch:
    # Working memory of `_refine` for a kernel of radius r, allocated once per call of a decoder.
    double* rows         # (3 + 2r) x 3: the horizontal pass
    double* window       # 3 + 2r: one row of the (3 + 2r)-wide window around the peak, as float64
    Py_ssize_t* columns  # 3 + 2r: the window's clamped column indices


cdef int _scratch_alloc(Scratch* s, Py_ssize_t r) noexcept nogil:
    s.rows = <double*>malloc((3 + 2 * r) * 3 * sizeof(double))
    s.window = <double*>malloc((3 + 2 * r) * sizeof(double))
    s.columns = <Py_ssize_t*>malloc((3 + 2 * r) * sizeof(Py_ssize_t))
    return 0 if (s.rows != NULL and s.window != NULL and s.columns != NULL) else -1


cdef void _scratch_free(Scratch* s) noexcept nogil:
    free(s.rows)
    free(s.window)
    free(s.columns)
    s.rows = NULL
    s.window = NULL
    s.columns = NULL


cdef void _refine(const float* hm, Py_ssize_t H, Py_ssize_t W, Py_ssize_t x, Py_ssize_t y, const double* k,
                  Py_ssize_t r, Scratch* s, double* out_x, double* out_y) noexcept nogil:
    """DARK step at integer peak (x, y) of one C-contiguous map hm (H, W): writes x + offset, y + offset
    (heatmap px).

    The blurred map is needed at the 3x3 clamped neighbourhood only. Its horizontal pass covers padded rows
    y-1-r .. y+1+r (each reading original row clamp(row)) at the 3 clamped columns x-1, x, x+1, whose taps
    all fall in the window of padded columns x-1-r .. x+1+r.
    """
    cdef Py_ssize_t n = 3 + 2 * r
    cdef Py_ssize_t t, j, a, b
    cdef Py_ssize_t cols[3]
    cdef Py_ssize_t off[3]
    cdef Py_ssize_t ys[3]
    cdef double L[3][3]
    cdef double h0, h1, h2
    cdef const double* top
    cdef double c, dx, dy, dxx, dyy, dxy, det, ox, oy
    cdef bint bx, by
    cdef const float* src
    cdef double* rows = s.rows
    cdef double* win = s.window

    cols[0] = _clamp(x - 1, W)
    cols[1] = x
    cols[2] = _clamp(x + 1, W)
    ys[0] = _clamp(y - 1, H)
    ys[1] = y
    ys[2] = _clamp(y + 1, H)
    for j in range(n):
        s.columns[j] = _clamp(x - 1 - r + j, W)

    # Horizontal pass. Output column cols[b] reads padded columns cols[b]-r .. cols[b]+r, which start at
    # window index cols[b] - (x - 1 - r) - r = cols[b] - x + 1. The three sums run side by side (independent
    # dependency chains), each in the twin's order, so the result is the twin's to the last bit.
    for b in range(3):
        off[b] = cols[b] - x + 1
    for t in range(n):
        src = hm + _clamp(y - 1 - r + t, H) * W
        for j in range(n):
            win[j] = <double>src[s.columns[j]]
        h0 = 0.0
        h1 = 0.0
        h2 = 0.0
        for j in range(2 * r + 1):
            h0 = h0 + k[j] * win[off[0] + j]
            h1 = h1 + k[j] * win[off[1] + j]
            h2 = h2 + k[j] * win[off[2] + j]
        rows[t * 3] = h0
        rows[t * 3 + 1] = h1
        rows[t * 3 + 2] = h2

    # Vertical pass at the 3 clamped rows: padded row cy - r + j sits at scratch row (cy - r + j) - (y - 1 - r)
    # = cy - y + 1 + j. Then the log, with the twin's floor.
    for a in range(3):
        top = rows + (ys[a] - y + 1) * 3
        h0 = 0.0
        h1 = 0.0
        h2 = 0.0
        for j in range(2 * r + 1):
            h0 = h0 + k[j] * top[j * 3]
            h1 = h1 + k[j] * top[j * 3 + 1]
            h2 = h2 + k[j] * top[j * 3 + 2]
        L[a][0] = _floored_log(h0)
        L[a][1] = _floored_log(h1)
        L[a][2] = _floored_log(h2)

    c = L[1][1]
    dx = 0.5 * (L[1][2] - L[1][0])
    dy = 0.5 * (L[2][1] - L[0][1])
    dxx = L[1][2] - 2 * c + L[1][0]
    dyy = L[2][1] - 2 * c + L[0][1]
    dxy = 0.25 * (L[2][2] - L[2][0] - L[0][2] + L[0][0])
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
    out_x[0] = <double>x + _clip1(ox)
    out_y[0] = <double>y + _clip1(oy)


cdef Py_ssize_t _argmax(const float* a, Py_ssize_t size) noexcept nogil:
    """np.argmax of a[0 .. size-1]: the first maximum, or the first NaN if there is one."""
    cdef Py_ssize_t i, at = 0
    cdef float best = a[0]
    if best != best:
        return 0
    for i in range(1, size):
        if a[i] > best:
            best = a[i]
            at = i
        elif a[i] != a[i]:
            return i
    return at


def _as_maps(hm):
    """Any (N, K, H, W) real array -> C-contiguous float32 (float16 is widened here)."""
    a = np.ascontiguousarray(hm, dtype=np.float32)
    if a.ndim != 4:
        raise ValueError(f"heatmaps must have shape (N, K, H, W), got {a.shape}")
    if a.shape[2] == 0 or a.shape[3] == 0:
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
    xy_arr = np.zeros((N, K, 2), np.float32)
    scores_arr = np.zeros((N, K), np.float32)
    cdef float[:, :, ::1] xy = xy_arr
    cdef float[:, ::1] scores = scores_arr
    cdef Py_ssize_t r = _kernel_radius(blur_sigma)
    cdef double* k = <double*>malloc((2 * r + 1) * sizeof(double))
    cdef Scratch scratch
    cdef Py_ssize_t n, m, bi
    cdef const float* one
    cdef float best
    cdef double fx = 0.0, fy = 0.0
    if _scratch_alloc(&scratch, r) != 0 or k == NULL:
        free(k)
        _scratch_free(&scratch)
        raise MemoryError()
    try:
        with nogil:
            _fill_kernel(k, r, blur_sigma)
            for n in range(N):
                for m in range(K):
                    one = &h[n, m, 0, 0]
                    bi = _argmax(one, H * W)
                    best = one[bi]
                    _refine(one, H, W, bi % W, bi // W, k, r, &scratch, &fx, &fy)
                    xy[n, m, 0] = <float>fx
                    xy[n, m, 1] = <float>fy
                    scores[n, m] = best
    finally:
        free(k)
        _scratch_free(&scratch)
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
    maps = _as_maps(hm)
    cdef const float[:, :, :, ::1] h = maps
    cdef Py_ssize_t N = h.shape[0], K = h.shape[1], H = h.shape[2], W = h.shape[3]
    xy_arr = np.zeros((N, K, topk, 2), np.float32)
    scores_arr = np.zeros((N, K, topk), np.float32)
    counts_arr = np.zeros((N, K), np.int32)
    cdef float[:, :, :, ::1] xy = xy_arr
    cdef float[:, :, ::1] scores = scores_arr
    cdef int[:, ::1] counts = counts_arr
    # the twin compares float32 maps with a Python float, which numpy casts to float32
    cdef float thr = <float>threshold
    cdef Py_ssize_t r = _kernel_radius(blur_sigma)
    cdef double* k = <double*>malloc((2 * r + 1) * sizeof(double))
    cdef Scratch scratch
    # the current top list of one map, sorted by score descending then raster index ascending
    cdef float* top_val = <float*>malloc((topk + 1) * sizeof(float))
    cdef Py_ssize_t* top_idx = <Py_ssize_t*>malloc((topk + 1) * sizeof(Py_ssize_t))
    cdef float* hmax = <float*>malloc(H * W * sizeof(float))
    cdef unsigned char* mask = <unsigned char*>malloc(H * W)
    cdef Py_ssize_t n, m, i, p, q, count
    cdef const float* one
    cdef float v
    cdef double fx = 0.0, fy = 0.0
    if _scratch_alloc(&scratch, r) != 0 or k == NULL or top_val == NULL or top_idx == NULL or hmax == NULL \
            or mask == NULL:
        free(k)
        _scratch_free(&scratch)
        free(top_val)
        free(top_idx)
        free(hmax)
        free(mask)
        raise MemoryError()
    try:
        with nogil:
            _fill_kernel(k, r, blur_sigma)
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
                        _refine(one, H, W, top_idx[p] % W, top_idx[p] // W, k, r, &scratch, &fx, &fy)
                        xy[n, m, p, 0] = <float>fx
                        xy[n, m, p, 1] = <float>fy
                        scores[n, m, p] = top_val[p]
                    counts[n, m] = <int>count
    finally:
        free(k)
        _scratch_free(&scratch)
        free(top_val)
        free(top_idx)
        free(hmax)
        free(mask)
    return xy_arr, scores_arr, counts_arr
