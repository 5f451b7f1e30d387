# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled regression-tree cascade: the hot loop behind `poselive.face_trees.predict_landmarks`.

The behaviour is defined by the numpy twin in poselive/face_trees.py (`predict_landmarks_reference`). The two
sum in different orders (the twin adds each stage's leaves in one matrix product), so they agree to a few
millionths of a pixel until a pixel read lands on a rounding edge in one and not the other; after that a later
stage may read another pixel and take another leaf, and the two drift apart by up to a pixel or two, neither
worse than the other (tests/test_face_trees.py compares them on real faces).
"""
from libc.math cimport cos, sin, floor

import numpy as np


cdef extern from *:
    void __builtin_prefetch(const void* address) nogil

# Leaf rows fetched ahead of the one being added. A stage's 500 rows lie at random in 22 MB of leaves, so each
# is a trip to memory; right after another network has run (the live face stage's case) fetching them one
# after the other took 1.26 ms a face, fetching ahead 0.29 ms (0.13 ms with the rows already cached).
DEF AHEAD = 8


cdef inline void _fetch(const signed char* row, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(0, n, 64):
        __builtin_prefetch(row + i)
    __builtin_prefetch(row + n - 1)


def run_cascade(const unsigned char[:, ::1] gray, double cx, double cy, double side, double angle,
                const float[:, ::1] mean, const short[:, ::1] anchors, const float[:, :, ::1] offsets,
                const short[:, :, ::1] split_a, const short[:, :, ::1] split_b,
                const float[:, :, ::1] thresholds, const signed char[:, :, :, ::1] leaves,
                const float[:, ::1] leaf_scale):
    """Landmarks (K, 2) float32, image px, of the face in the frame (centre cx, cy; side; angle radians).
    Arrays as TreeCascade holds them."""
    cdef Py_ssize_t n_stages = anchors.shape[0], n_pixels = anchors.shape[1]
    cdef Py_ssize_t n_trees = split_a.shape[1], n_splits = split_a.shape[2], n_out = leaves.shape[3]
    cdef Py_ssize_t k_points = mean.shape[0], height = gray.shape[0], width = gray.shape[1]
    shape_arr = np.array(mean, np.float32)
    grey_arr = np.zeros(n_pixels, np.float32)
    rows_arr = np.zeros(n_trees, np.intp)
    cdef Py_ssize_t[::1] rows = rows_arr
    cdef float[:, ::1] shape = shape_arr
    cdef float* flat = &shape[0, 0]       # x0, y0, x1, y1, ...: the leaves' layout
    cdef const signed char* row
    cdef float[::1] grey = grey_arr
    cdef double r00 = side * cos(angle), r01 = -side * sin(angle), r10 = side * sin(angle), r11 = side * cos(angle)
    cdef double mx = 0, my = 0, sx, sy, ax, ay, bx, by, den = 0, dot, cross, c, s, u, v, x, y
    cdef float t00, t01, t10, t11, scale, ga, gb
    cdef Py_ssize_t st, i, t, node, d, depth = 0, ix, iy, k, j
    while (1 << (depth + 1)) - 1 <= n_splits:
        depth += 1
    with nogil:
        for k in range(k_points):
            mx += mean[k, 0]
            my += mean[k, 1]
        mx /= k_points
        my /= k_points
        for k in range(k_points):
            den += (mean[k, 0] - mx) * (mean[k, 0] - mx) + (mean[k, 1] - my) * (mean[k, 1] - my)
        for st in range(n_stages):
            # The similarity (scale and turn) from the mean shape to the current one, by least squares.
            sx = 0
            sy = 0
            for k in range(k_points):
                sx += shape[k, 0]
                sy += shape[k, 1]
            sx /= k_points
            sy /= k_points
            dot = 0
            cross = 0
            for k in range(k_points):
                ax = mean[k, 0] - mx
                ay = mean[k, 1] - my
                bx = shape[k, 0] - sx
                by = shape[k, 1] - sy
                dot += ax * bx + ay * by
                cross += ax * by - ay * bx
            c = dot / den
            s = cross / den
            t00 = <float>c
            t01 = <float>(-s)
            t10 = <float>s
            t11 = <float>c
            # The stage's pixels, each an offset from its anchor landmark, turned and scaled with the shape.
            for i in range(n_pixels):
                k = anchors[st, i]
                u = offsets[st, i, 0] * t00 + offsets[st, i, 1] * t01 + shape[k, 0] - 0.5
                v = offsets[st, i, 0] * t10 + offsets[st, i, 1] * t11 + shape[k, 1] - 0.5
                x = u * r00 + v * r01 + cx
                y = u * r10 + v * r11 + cy
                ix = <Py_ssize_t>floor(x + 0.5)
                iy = <Py_ssize_t>floor(y + 0.5)
                if 0 <= ix < width and 0 <= iy < height:
                    grey[i] = gray[iy, ix]
                else:
                    grey[i] = 0
            # First every tree's leaf, then their rows, each fetched AHEAD rows before it is added.
            for t in range(n_trees):
                node = 0
                for d in range(depth):
                    ga = grey[split_a[st, t, node]]
                    gb = grey[split_b[st, t, node]]
                    if ga - gb > thresholds[st, t, node]:
                        node = 2 * node + 1
                    else:
                        node = 2 * node + 2
                rows[t] = node - n_splits
            for t in range(min(AHEAD, n_trees)):
                _fetch(&leaves[st, t, rows[t], 0], n_out)
            for t in range(n_trees):
                if t + AHEAD < n_trees:
                    _fetch(&leaves[st, t + AHEAD, rows[t + AHEAD], 0], n_out)
                scale = leaf_scale[st, t]
                row = &leaves[st, t, rows[t], 0]
                for j in range(n_out):  # a straight loop over contiguous memory, which the compiler vectorises
                    flat[j] += scale * row[j]
        for k in range(k_points):
            u = shape[k, 0] - 0.5
            v = shape[k, 1] - 0.5
            shape[k, 0] = <float>(u * r00 + v * r01 + cx)
            shape[k, 1] = <float>(u * r10 + v * r11 + cy)
    return shape_arr
