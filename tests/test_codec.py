"""The codec's promises, on synthetic heatmaps where the truth is exact.

Encoding then decoding gives the point back; DARK beats the plain argmax on noisy maps; the compiled decoder
(poselive._decode) and its numpy twins in poselive/codec.py agree to 1e-4 px, border pixels included. The tests
that take `decoder_impl` run once per implementation (see conftest.py).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from poselive import codec
from poselive.codec import HeatmapCodec, decode_heatmaps, encode_gaussian, find_peaks

HM_WH = (48, 64)  # heatmap (W, H) of a 192x256 crop at stride 4
TOL_PX = 1e-4     # compiled vs numpy twin

needs_compiled = pytest.mark.skipif(codec._compiled is None,
                                    reason="poselive._decode is not built (or POSELIVE_PURE_PYTHON is set)")


def gaussian_maps(points_xy: np.ndarray, wh=HM_WH, sigma: float = 2.0) -> np.ndarray:
    """One clean target per point: (1, K, H, W) float32."""
    maps, _ = encode_gaussian(points_xy, np.ones(len(points_xy), bool), wh, sigma)
    return maps[None]


def both_twins_agree(hm: np.ndarray, blur_sigma: float = 2.0) -> None:
    xy_c, s_c = codec._compiled.decode_heatmaps(np.ascontiguousarray(hm, np.float32), blur_sigma)
    xy_n, s_n = codec.decode_heatmaps_reference(hm, blur_sigma)
    assert xy_c.dtype == np.float32 and s_c.dtype == np.float32
    assert xy_c.shape == xy_n.shape and s_c.shape == s_n.shape
    np.testing.assert_allclose(xy_c, xy_n, rtol=0, atol=TOL_PX)
    np.testing.assert_array_equal(s_c, s_n)


def both_peak_finders_agree(hm: np.ndarray, threshold: float, topk: int, blur_sigma: float = 2.0) -> None:
    xy_c, s_c, n_c = codec._compiled.find_peaks(np.ascontiguousarray(hm, np.float32), threshold, topk,
                                                blur_sigma)
    xy_n, s_n, n_n = codec.find_peaks_reference(hm, threshold, topk, blur_sigma)
    assert (xy_c.dtype, s_c.dtype, n_c.dtype) == (np.float32, np.float32, np.int32)
    np.testing.assert_array_equal(n_c, n_n)
    np.testing.assert_array_equal(s_c, s_n)  # same peaks in the same order
    np.testing.assert_allclose(xy_c, xy_n, rtol=0, atol=TOL_PX)


# ------------------------------------------------------------------------------------------- the build
def test_the_compiled_decoder_was_built():
    if os.environ.get("POSELIVE_PURE_PYTHON"):
        pytest.skip("POSELIVE_PURE_PYTHON is set: the numpy twins are in use on purpose")
    assert codec._compiled is not None, (
        "poselive._decode did not build or import; run `pip install -e .` and read the compiler's output")
    assert codec.IMPLEMENTATION == "cython"


def test_decoder_impl_switches_what_the_public_decoders_run(decoder_impl):
    assert (codec._compiled is None) == (decoder_impl == "numpy")


# ---------------------------------------------------------------------------------- encode -> decode
def test_sub_pixel_points_come_back_within_005_px(decoder_impl):
    rng = np.random.default_rng(0)
    w, h = HM_WH
    points = rng.uniform([5, 5], [w - 1 - 5, h - 1 - 5], (200, 2))  # >= 5 px from every border
    xy, scores = decode_heatmaps(gaussian_maps(points))
    err = np.linalg.norm(xy[0] - points, axis=1)
    assert err.max() < 0.05, f"worst {err.max():.4f} px at {points[err.argmax()]}"
    assert np.all(scores > 0.5)  # the sampled peak of a unit Gaussian is at least exp(-0.25)


def test_points_on_border_pixels_and_corners_decode_onto_them(decoder_impl):
    w, h = HM_WH
    points = np.array([(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1),         # corners: no step at all
                       (0, 17.3), (w - 1, 40.6), (21.7, 0), (9.2, h - 1)],     # edges: 1-D step along them
                      np.float64)
    xy, _ = decode_heatmaps(gaussian_maps(points))
    np.testing.assert_allclose(xy[0], points, atol=1e-3)


def test_points_one_px_or_more_inside_come_back_within_0001_px(decoder_impl):
    """codec.py: near the border the blur shrinks instead of reading copied edge pixels, so a clean target at
    least 1 px inside decodes within 1e-3 px, on edges and in corners alike."""
    rng = np.random.default_rng(1)
    w, h = HM_WH
    d = rng.uniform(1, 6, 400)
    along = rng.uniform(8, 40, 400)
    side = rng.integers(0, 4, 400)
    points = np.select([side[:, None] == 0, side[:, None] == 1, side[:, None] == 2],
                       [np.c_[d, along], np.c_[w - 1 - d, along], np.c_[along, d]],
                       np.c_[along, h - 1 - d])
    corners = rng.uniform(1, 6, (100, 2))
    corners[::2, 0] = w - 1 - corners[::2, 0]
    corners[::3, 1] = h - 1 - corners[::3, 1]
    points = np.concatenate([points, corners])
    xy, _ = decode_heatmaps(gaussian_maps(points))
    err = np.linalg.norm(xy[0] - points, axis=1)
    assert err.max() < 1e-3, f"worst {err.max():.5f} px at {points[err.argmax()]}"


def test_every_point_inside_the_map_decodes_within_1_px(decoder_impl):
    """Nearer than 1 px to the border the border pixel's rules leave up to 0.5 px on an edge and 0.71 px at a
    corner (codec.py); the peak finder refines a peak as the one-peak decoder does."""
    w, h = HM_WH
    d = np.linspace(0, 5, 51)
    points = np.concatenate([np.c_[d, np.full_like(d, 20.3)], np.c_[np.full_like(d, 30.6), d],
                             np.c_[w - 1 - d, np.full_like(d, 33.1)], np.c_[np.full_like(d, 12.4), h - 1 - d],
                             np.c_[d, d]])
    maps = gaussian_maps(points)
    xy, _ = decode_heatmaps(maps)
    err = np.linalg.norm(xy[0] - points, axis=1)
    assert err.max() <= 1.0, f"worst {err.max():.3f} px at {points[err.argmax()]}"
    peaks_xy, _, counts = find_peaks(maps, threshold=0.1, topk=1)
    np.testing.assert_array_equal(counts, 1)
    np.testing.assert_array_equal(peaks_xy[:, :, 0], xy)


def test_dark_beats_the_plain_argmax_on_noisy_heatmaps(decoder_impl):
    rng = np.random.default_rng(2)
    w, h = HM_WH
    points = rng.uniform([6, 6], [w - 7, h - 7], (300, 2))
    hm = gaussian_maps(points) + rng.normal(0, 0.05, (1, len(points), h, w)).astype(np.float32)
    xy, _ = decode_heatmaps(hm)
    idx = hm.reshape(len(points), -1).argmax(1)
    argmax_xy = np.stack([idx % w, idx // w], 1)
    dark_err = np.linalg.norm(xy[0] - points, axis=1).mean()
    argmax_err = np.linalg.norm(argmax_xy - points, axis=1).mean()
    assert dark_err < 0.5 * argmax_err, f"DARK {dark_err:.3f} px vs argmax {argmax_err:.3f} px"


def test_heatmap_codec_round_trip_in_crop_px(decoder_impl):
    hc = HeatmapCodec(input_wh=(192, 256), stride=4, sigma=2.0, blur_sigma=2.0)
    assert hc.heatmap_wh == HM_WH
    rng = np.random.default_rng(3)
    kp = np.c_[rng.uniform([24, 24], [192 - 25, 256 - 25], (17, 2)), np.full(17, 2.0)]
    maps, weights = hc.encode(kp)
    xy, scores = hc.decode(maps[None])
    assert xy.shape == (1, 17, 2) and scores.shape == (1, 17)
    np.testing.assert_allclose(xy[0], kp[:, :2], atol=0.05 * hc.stride)
    np.testing.assert_array_equal(weights, 1)


def test_scores_are_clipped_to_zero_one(decoder_impl):
    """A network's peak can overshoot the targets' height of 1, and an empty map can sit below 0; the scores
    outputs carry are in [0, 1] all the same, and the peaks stay where they were."""
    hc = HeatmapCodec(input_wh=(192, 256), stride=4)
    # On heatmap pixel centres (x_input = 4 j + 1.5), so the targets peak at exactly 1.
    maps, _ = hc.encode(np.array([[61.5, 81.5, 2], [101.5, 149.5, 2], [0, 0, 0]]))
    maps = maps * np.array([1.3, 0.6, 1.0], np.float32)[:, None, None]
    maps[2] -= 0.2
    xy, scores = hc.decode(maps[None])
    np.testing.assert_allclose(scores[0], [1.0, 0.6, 0.0], atol=1e-3)
    np.testing.assert_allclose(xy[0, :2], [[61.5, 81.5], [101.5, 149.5]], atol=0.05)


def test_encode_gives_zero_weight_and_empty_maps_to_unlabelled_and_outside_points():
    hc = HeatmapCodec(input_wh=(192, 256), stride=4)
    kp = np.array([[96, 128, 2],     # labelled, inside
                   [96, 128, 0],     # not labelled
                   [-9, 128, 2],     # left of the crop
                   [96, 300, 1],     # below the crop
                   [250, -40, 2],    # right of and above the crop
                   [0, 0, 1]],       # the crop's corner pixel is inside
                  np.float64)
    maps, weights = hc.encode(kp)
    assert maps.shape == (6, 64, 48) and maps.dtype == np.float32 and weights.dtype == np.float32
    np.testing.assert_array_equal(weights, [1, 0, 0, 0, 0, 1])
    assert not maps[1:5].any()
    assert maps[0].max() > 0.9 and maps[5].max() > 0.5


def test_a_keypoint_that_is_not_a_number_gets_zero_weight_and_an_empty_map():
    maps, weights = HeatmapCodec(input_wh=(192, 256), stride=4).encode(np.array([[np.nan, 5, 2], [7, np.inf, 2]]))
    np.testing.assert_array_equal(weights, [0, 0])
    np.testing.assert_array_equal(maps, 0)


# ------------------------------------------------------------------------- shapes and input types
@pytest.mark.parametrize("shape", [(1, 1, 13, 7), (3, 5, 13, 7), (2, 3, 7, 13), (1, 2, 1, 9), (2, 1, 9, 1),
                                   (1, 1, 1, 1), (0, 17, 8, 6)])
def test_any_batch_shape_decodes_map_by_map(decoder_impl, shape):
    hm = np.random.default_rng(4).random(shape).astype(np.float32)
    xy, scores = decode_heatmaps(hm)
    assert xy.shape == shape[:2] + (2,) and scores.shape == shape[:2]
    assert xy.dtype == np.float32 and scores.dtype == np.float32
    N, K, H, W = shape
    for n in range(N):
        for k in range(K):
            one_xy, one_score = decode_heatmaps(hm[n:n + 1, k:k + 1].copy())
            np.testing.assert_array_equal(one_xy[0, 0], xy[n, k])
            assert one_score[0, 0] == scores[n, k] == hm[n, k].max()
            assert -0.5 <= xy[n, k, 0] <= W - 0.5 and -0.5 <= xy[n, k, 1] <= H - 0.5


def test_float16_heatmaps_decode_like_their_float32_values(decoder_impl):
    points = np.random.default_rng(5).uniform([5, 5], [40, 56], (17, 2))
    hm16 = gaussian_maps(points).astype(np.float16)
    xy16, s16 = decode_heatmaps(hm16)
    xy32, s32 = decode_heatmaps(hm16.astype(np.float32))
    np.testing.assert_array_equal(xy16, xy32)
    np.testing.assert_array_equal(s16, s32)
    np.testing.assert_allclose(xy16[0], points, atol=0.05)


def test_find_peaks_finds_every_person_in_score_order(decoder_impl):
    w, h = HM_WH
    centres = np.array([[10.3, 12.7], [35.6, 14.2], [12.8, 45.1], [37.2, 50.6]])
    heights = np.array([0.6, 0.9, 0.3, 0.75])
    hm = (gaussian_maps(centres)[0] * heights[:, None, None]).max(0)
    hm = np.stack([hm, np.zeros_like(hm)])[None]  # a second map with no one in it
    xy, scores, counts = find_peaks(hm, threshold=0.2, topk=6)
    assert xy.shape == (1, 2, 6, 2) and scores.shape == (1, 2, 6) and counts.shape == (1, 2)
    assert counts.dtype == np.int32
    np.testing.assert_array_equal(counts, [[4, 0]])
    order = np.argsort(-heights)
    np.testing.assert_allclose(xy[0, 0, :4], centres[order], atol=0.05)
    # each score is the Gaussian's height sampled at most half a pixel from its centre on each axis
    assert np.all(scores[0, 0, :4] <= heights[order]) and np.all(scores[0, 0, :4] > 0.93 * heights[order])
    assert not scores[0, 0, 4:].any() and not xy[0, 0, 4:].any() and not xy[0, 1].any()
    # the threshold and topk cut from the bottom of the score order
    _, scores, counts = find_peaks(hm, threshold=0.65, topk=6)
    assert counts[0, 0] == 2
    _, scores, counts = find_peaks(hm, threshold=0.2, topk=3)
    assert counts[0, 0] == 3 and 0.93 * 0.6 < scores[0, 0, -1] <= 0.6


def test_find_peaks_breaks_ties_in_raster_order(decoder_impl):
    hm = np.zeros((1, 1, 9, 11), np.float32)
    spikes = [(1, 8), (4, 2), (4, 7), (7, 0)]  # (row, column), raster order
    for r, c in spikes:
        hm[0, 0, r, c] = 0.5
    hm[0, 0, 7, 9] = 0.8
    xy, scores, counts = find_peaks(hm, threshold=0.1, topk=3, blur_sigma=0)
    assert counts[0, 0] == 3
    np.testing.assert_array_equal(scores[0, 0], np.float32([0.8, 0.5, 0.5]))
    np.testing.assert_allclose(xy[0, 0], [(9, 7), (8, 1), (2, 4)], atol=1e-6)


def test_find_peaks_treats_outside_the_map_as_minus_infinity(decoder_impl):
    """A flat map below zero: every pixel equals its neighbourhood's maximum, border pixels included."""
    hm = np.full((1, 1, 5, 4), -1.0, np.float32)
    _, _, counts = find_peaks(hm, threshold=-2.0, topk=100)
    assert counts[0, 0] == 20


# ---------------------------------------------------------------------- compiled vs numpy twin
@needs_compiled
@pytest.mark.parametrize("blur_sigma", [2.0, 1.5, 1.0, 0.4, 0.0, 3.3])
def test_twins_agree_on_random_maps(blur_sigma):
    rng = np.random.default_rng(6)
    for shape in [(2, 17, 64, 48), (3, 4, 13, 7), (1, 3, 7, 13), (2, 2, 1, 5), (2, 2, 5, 1), (1, 1, 1, 1)]:
        both_twins_agree(rng.random(shape).astype(np.float32), blur_sigma)
        both_twins_agree(rng.normal(0, 1, shape).astype(np.float32), blur_sigma)  # log floor for <= 0


@needs_compiled
@pytest.mark.parametrize("blur_sigma", [2.0, 1.5, 1.0, 0.0])
def test_twins_agree_with_peaks_on_border_pixels_and_corners(blur_sigma):
    rng = np.random.default_rng(7)
    H, W = 64, 48
    spots = [(0, 0), (0, W - 1), (H - 1, 0), (H - 1, W - 1), (0, 20), (H - 1, 31), (40, 0), (9, W - 1),
             (1, 1), (1, 20), (H - 2, W - 2), (30, 1), (2, W - 3),
             (3, 3), (4, 25), (H - 6, 5), (50, W - 7), (7, 7), (H - 8, W - 8)]  # blur radius 2 .. 6
    hm = rng.random((len(spots), 3, H, W)).astype(np.float32) * 0.3
    for i, (r, c) in enumerate(spots):
        # a sharp spot, a smooth bump and a plateau of equal pixels centred on the same pixel
        hm[i, 0, r, c] = 1.0
        hm[i, 1] += gaussian_maps(np.array([[c + rng.uniform(-0.4, 0.4), r + rng.uniform(-0.4, 0.4)]]),
                                  (W, H))[0, 0]
        hm[i, 2, max(r - 1, 0):r + 2, max(c - 1, 0):c + 2] = 1.0
    both_twins_agree(hm, blur_sigma)
    both_peak_finders_agree(hm, 0.5, 5, blur_sigma)


@needs_compiled
def test_twins_agree_on_float16_input():
    rng = np.random.default_rng(8)
    hm = rng.random((4, 17, 13, 7)).astype(np.float16)
    xy_c, s_c = codec._compiled.decode_heatmaps(hm, 2.0)  # the extension widens float16 itself
    xy_n, s_n = codec.decode_heatmaps_reference(hm, 2.0)
    np.testing.assert_allclose(xy_c, xy_n, rtol=0, atol=TOL_PX)
    np.testing.assert_array_equal(s_c, s_n)
    xy_c, s_c, n_c = codec._compiled.find_peaks(hm, 0.3, 4, 2.0)
    xy_n, s_n, n_n = codec.find_peaks_reference(hm, 0.3, 4, 2.0)
    np.testing.assert_array_equal(n_c, n_n)
    np.testing.assert_array_equal(s_c, s_n)
    np.testing.assert_allclose(xy_c, xy_n, rtol=0, atol=TOL_PX)


@needs_compiled
def test_twins_agree_on_noisy_targets_and_pathological_maps():
    rng = np.random.default_rng(9)
    points = rng.uniform([-0.5, -0.5], [47.5, 63.5], (34, 2))
    hm = gaussian_maps(points) + rng.normal(0, 0.05, (1, 34, 64, 48)).astype(np.float32)
    both_twins_agree(hm.reshape(2, 17, 64, 48))
    flat = np.zeros((1, 3, 6, 5), np.float32)
    flat[0, 1] = 0.25
    flat[0, 2] = -3.0
    both_twins_agree(flat)                      # argmax ties: the first pixel, no step
    spike = np.zeros((1, 1, 5, 5), np.float32)
    spike[0, 0, 2, 1:4] = [1e-20, 1.0, 1e-8]    # unblurred: the log floor (1e-10) shapes the step
    spike[0, 0, 1:4:2, 2] = [1e-30, 1e-9]
    both_twins_agree(spike, blur_sigma=0.0)
    with_nan = rng.random((1, 2, 9, 8)).astype(np.float32)
    with_nan[0, 0, 4, 3] = np.nan               # np.argmax picks the NaN; the result is NaN in both
    with_nan[0, 1, 0, 7] = np.inf
    with np.errstate(invalid="ignore"):         # the numpy twin computes with the NaN and inf
        both_twins_agree(with_nan)
        both_peak_finders_agree(with_nan, 0.5, 6)   # no peak next to the NaN, in both


@needs_compiled
@pytest.mark.parametrize("topk", [0, 1, 3, 20, 1000])
def test_twin_peak_finders_agree(topk):
    rng = np.random.default_rng(10)
    w, h = HM_WH
    maps = []
    for _ in range(2 * 17):
        n = rng.integers(0, 6)
        pts = rng.uniform([-0.5, -0.5], [w - 0.5, h - 0.5], (n, 2))
        amp = rng.choice([0.4, 0.7, 1.0], n)  # repeated heights exercise the raster-order tie rule
        m = (gaussian_maps(pts)[0] * amp[:, None, None]).max(0) if n else np.zeros((h, w), np.float32)
        maps.append(m + rng.normal(0, 0.03, (h, w)).astype(np.float32))
    hm = np.stack(maps).reshape(2, 17, h, w).astype(np.float32)
    both_peak_finders_agree(hm, 0.2, topk)
    both_peak_finders_agree(rng.random((2, 3, 13, 7)).astype(np.float32), 0.3, topk, 1.0)  # many peaks
    quantised = np.round(rng.random((1, 4, 13, 7)) * 4).astype(np.float32) / 4   # many equal plateaus
    both_peak_finders_agree(quantised, 0.1, topk, 1.5)


@needs_compiled
def test_compiled_decoder_refuses_bad_input_with_a_clear_message():
    with pytest.raises(ValueError, match="N, K, H, W"):
        codec._compiled.decode_heatmaps(np.zeros((17, 64, 48), np.float32), 2.0)
    with pytest.raises(ValueError, match="1x1"):
        codec._compiled.decode_heatmaps(np.zeros((1, 17, 0, 48), np.float32), 2.0)
    with pytest.raises(ValueError, match="topk"):
        codec._compiled.find_peaks(np.zeros((1, 1, 4, 4), np.float32), 0.1, -1, 2.0)
    with pytest.raises(ValueError, match="blur_sigma"):
        codec._compiled.decode_heatmaps(np.zeros((1, 1, 4, 4), np.float32), float("nan"))


# ------------------------------------------------------------------------------------------- limits
@pytest.mark.faults
def test_a_huge_blur_sigma_costs_no_more_than_the_map_allows(decoder_impl):
    """A blur kernel never reads outside the map, so no kernel wider than the map is made: at sigma 1000 the
    decoders use a few kB, not the 144 MB kernel table of radius 3000 (53 GiB at sigma 20000)."""
    import tracemalloc
    hm = np.random.default_rng(11).random((1, 17, 32, 24)).astype(np.float32)
    sigma = 1000.25  # a value no earlier test cached a kernel table for
    tracemalloc.start()
    try:
        xy, _ = decode_heatmaps(hm, sigma)
        pxy, _, counts = find_peaks(hm, 0.5, 5, sigma)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak_bytes < 5e6, peak_bytes
    assert np.isfinite(xy).all() and counts.sum() > 0
    if decoder_impl == "cython":
        both_twins_agree(hm, sigma)
        both_peak_finders_agree(hm, 0.5, 5, sigma)


@pytest.mark.faults
@pytest.mark.parametrize("shape", [(1, 2, 0, 5), (1, 2, 4, 0), (0, 17, 0, 0)])
def test_maps_without_pixels_have_no_peaks_and_no_maximum(decoder_impl, shape):
    xy, scores, counts = find_peaks(np.zeros(shape, np.float32), topk=3)
    assert xy.shape == (*shape[:2], 3, 2) and scores.shape == (*shape[:2], 3) and not counts.any()
    with pytest.raises(ValueError, match="at least 1x1 px"):
        decode_heatmaps(np.zeros(shape, np.float32))
