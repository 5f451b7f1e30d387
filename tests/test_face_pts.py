"""The .pts reader/writer: 1-based files <-> 0-based pixel centres, exact round trips, errors for people."""
import numpy as np
import pytest

from poselive.errors import PoseliveError
from poselive.pts import parse_pts, read_pts, write_pts


def test_round_trip_is_exact_to_the_printed_precision(tmp_path):
    rng = np.random.default_rng(0)
    xy = np.round(rng.uniform(-5, 500, (68, 2)), 3)
    path = tmp_path / "face.pts"
    write_pts(path, xy)
    text = path.read_text()
    assert text.startswith("version: 1\nn_points: 68\n{\n") and text.endswith("}\n")
    np.testing.assert_allclose(read_pts(path), xy, atol=1e-9)
    write_pts(tmp_path / "again.pts", read_pts(path))
    assert (tmp_path / "again.pts").read_text() == text


def test_coordinates_are_shifted_from_one_based():
    xy = parse_pts("version: 1\nn_points: 2\n{\n1 1\n10.5 20.25\n}\n")
    np.testing.assert_array_equal(xy, [[0, 0], [9.5, 19.25]])


def test_file_without_header():
    np.testing.assert_array_equal(parse_pts("3 4\n5 6\n"), [[2, 3], [4, 5]])


@pytest.mark.parametrize("text, words", [
    ("version: 1\nn_points: 3\n{\n1 2\n3 4\n}\n", "n_points: 3 but 2"),
    ("version: 1\nn_points: 2\n{\n1 2\n3 4\n", "never closed"),
    ("{\n1 2\n3 x\n}\n", "line 2"),
    ("{\n1 2 3\n}\n", "line 1"),
    ("version: 1\nn_points: 0\n{\n}\n", "no points"),
    ("", "no points"),
])
def test_malformed_files_raise_a_clear_error(text, words):
    with pytest.raises(PoseliveError, match=words):
        parse_pts(text, "bad.pts")


def test_missing_file_is_a_poselive_error(tmp_path):
    with pytest.raises(PoseliveError, match="cannot read"):
        read_pts(tmp_path / "nope.pts")


def test_real_300w_file_reads_68_points_inside_its_image(shared_data):
    folder = shared_data / "face" / "300w" / "afw"
    import cv2
    pts = sorted(folder.glob("*.pts"))[0]
    xy = read_pts(pts)
    h, w = cv2.imread(str(pts.with_suffix(".jpg"))).shape[:2]
    assert xy.shape == (68, 2)
    assert (xy >= -0.5).all() and (xy[:, 0] <= w - 0.5).all() and (xy[:, 1] <= h - 0.5).all()
