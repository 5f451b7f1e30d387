"""The crop affine's promises: its inverse is exact, the box fills the crop in the pixel-centre convention, and
what `apply_matrix` says about a point is where `warp_crop` actually puts that point's pixels."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from poselive.transforms import CropBox, apply_matrix, box_to_crop, crop_matrix, invert_matrix, warp_crop

OUT_WH = (192, 256)


def test_inverse_matrix_round_trips_points():
    rng = np.random.default_rng(0)
    for rotation, flip in itertools.product([0.0, 33.0, -90.0, 171.5], [False, True]):
        crop = CropBox((312.4, 207.9), (150.0, 200.0), rotation, flip)
        m = crop_matrix(crop, OUT_WH)
        inv = invert_matrix(m)
        pts = rng.uniform(-100, 700, (50, 2))
        np.testing.assert_allclose(apply_matrix(inv, apply_matrix(m, pts)), pts, atol=1e-9)
        np.testing.assert_allclose(apply_matrix(m, apply_matrix(inv, pts)), pts, atol=1e-9)
        full = np.vstack([m, [0, 0, 1]]) @ np.vstack([inv, [0, 0, 1]])
        np.testing.assert_allclose(full, np.eye(3), atol=1e-12)


def test_the_box_fills_the_crop_edge_to_edge():
    """Box centre -> crop centre ((W-1)/2, (H-1)/2); box edges -> the crop's outer pixel edges -0.5 and W-0.5."""
    w, h = OUT_WH
    crop = CropBox((100.0, 60.0), (48.0, 64.0))
    m = crop_matrix(crop, OUT_WH)
    corners = np.array([[100 - 24, 60 - 32], [100 + 24, 60 + 32], [100, 60]], np.float64)
    np.testing.assert_allclose(apply_matrix(m, corners), [[-0.5, -0.5], [w - 0.5, h - 0.5],
                                                          [(w - 1) / 2, (h - 1) / 2]], atol=1e-12)


def test_positive_rotation_turns_the_content_counter_clockwise_and_flip_mirrors_it():
    w, h = OUT_WH
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    right_of_centre = np.array([[110.0, 60.0]])
    up = apply_matrix(crop_matrix(CropBox((100.0, 60.0), (48.0, 64.0), rotation_deg=90), OUT_WH), right_of_centre)
    np.testing.assert_allclose(up[0] - centre, [0, -10 * w / 48], atol=1e-9)   # straight up on screen
    left = apply_matrix(crop_matrix(CropBox((100.0, 60.0), (48.0, 64.0), flip=True), OUT_WH), right_of_centre)
    np.testing.assert_allclose(left[0] - centre, [-10 * w / 48, 0], atol=1e-9)


DOT_SIGMA = 2.5


def render_dots(shape_hw, dots_xy, sigma=DOT_SIGMA) -> np.ndarray:
    """A black BGR uint8 image with one Gaussian dot per channel, centred at the sub-pixel dots_xy (image px)."""
    ys, xs = np.mgrid[0:shape_hw[0], 0:shape_hw[1]].astype(np.float64)
    img = np.zeros(shape_hw + (3,), np.uint8)
    for c, (x, y) in enumerate(dots_xy):
        img[..., c] = np.round(255 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2)))
    return img


def find_dot(channel: np.ndarray, radius: int) -> np.ndarray:
    """Intensity centroid (x, y) of the one dot in a uint8 channel, within `radius` px of its brightest pixel."""
    y, x = np.unravel_index(channel.argmax(), channel.shape)
    y0, x0 = max(y - radius, 0), max(x - radius, 0)
    win = channel[y0:y + radius + 1, x0:x + radius + 1].astype(np.float64)
    ys, xs = np.indices(win.shape)
    return np.array([(win * (xs + x0)).sum(), (win * (ys + y0)).sum()]) / win.sum()


@pytest.mark.parametrize("rotation", [0.0, 30.0, -90.0, 137.0])
@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("scale", [0.6, 1.0, 2.0])
def test_a_dot_lands_where_apply_matrix_says(rotation, flip, scale):
    rng = np.random.default_rng([int(rotation) % 360, int(flip), int(scale * 10)])
    centre = np.array([400.3, 399.6])
    size = np.array(OUT_WH, np.float64) / scale  # crop px per image px = scale
    # three dots, each in its own colour channel, around the box centre and well inside the box
    angle = rng.uniform(0, 2 * np.pi, 3) + np.array([0, 2, 4]) * np.pi / 3
    dots = centre + rng.uniform(0.1, 0.3, (3, 1)) * size.min() * np.c_[np.cos(angle), np.sin(angle)]
    image = render_dots((800, 800), dots)
    crop = CropBox(tuple(centre), tuple(size), rotation, flip)
    m = crop_matrix(crop, OUT_WH)
    out = warp_crop(image, m, OUT_WH)
    assert out.shape == (OUT_WH[1], OUT_WH[0], 3)
    expected = apply_matrix(m, dots)
    for c in range(3):
        found = find_dot(out[..., c], radius=int(np.ceil(4 * DOT_SIGMA * scale)) + 1)
        assert np.linalg.norm(found - expected[c]) < 0.05, (
            f"channel {c}: dot at {found} in the crop, apply_matrix says {expected[c]}")


@pytest.mark.parametrize("box_xywh", [(10, 20, 30, 90), (5.5, 7.0, 200, 40), (0, 0, 96, 128), (3, 4, 0, 0)])
@pytest.mark.parametrize("input_wh", [(96, 128), (192, 256), (128, 128)])
def test_box_to_crop_keeps_the_input_aspect_and_contains_the_box(box_xywh, input_wh):
    x, y, w, h = box_xywh
    crop = box_to_crop(box_xywh, input_wh, padding=1.25)
    cw, ch = crop.size_wh
    assert cw / ch == pytest.approx(input_wh[0] / input_wh[1], rel=1e-12)
    assert crop.center_xy == pytest.approx((x + w / 2, y + h / 2))
    assert cw >= 1.25 * w - 1e-9 and ch >= 1.25 * h - 1e-9
    # the box's longer side (relative to the input's aspect) is the one that sets the size
    assert cw == pytest.approx(1.25 * max(w, 1.0)) or ch == pytest.approx(1.25 * max(h, 1.0))
    assert (crop.rotation_deg, crop.flip) == (0.0, False)
