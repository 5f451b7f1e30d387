"""300-W metrics against hand-computed values."""
import cv2
import numpy as np
import pytest

from poselive.face_metrics import auc, ced, draw_ced, failure_rate, nme


def face(eye_corner_distance: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    lm = rng.uniform(100, 200, (68, 2))
    lm[36] = (100.0, 120.0)
    lm[45] = (100.0 + eye_corner_distance, 120.0)
    return lm


def test_nme_of_a_known_shift():
    gt = face(50.0)
    pred = gt + (3.0, 4.0)             # every point 5 px off
    assert nme(pred, gt) == pytest.approx(5.0 / 50.0)
    pred = gt.copy()
    pred[10] += (6.0, 8.0)              # one point 10 px off: mean error 10 / 68 px
    assert nme(pred, gt) == pytest.approx(10.0 / 68.0 / 50.0)


def test_nme_per_face_uses_each_faces_own_eye_corners_and_ignores_scores():
    gts = np.stack([face(50.0), face(100.0)])
    preds = gts + (0.0, 2.0)
    preds = np.concatenate([preds, np.ones((2, 68, 1))], axis=2)   # a score column is ignored
    np.testing.assert_allclose(nme(preds, gts), [2 / 50, 2 / 100])


def test_failure_rate_auc_and_ced_by_hand():
    e = np.array([0.0, 0.02, 0.04, 0.08, 0.1])
    assert failure_rate(e) == pytest.approx(1 / 5)           # only 0.1 is above 0.08 (0.08 itself is not)
    # per face (0.08 - min(e, 0.08)) / 0.08 = 1, 0.75, 0.5, 0, 0
    assert auc(e) == pytest.approx((1 + 0.75 + 0.5) / 5)
    t, frac = ced(e, steps=5)
    np.testing.assert_allclose(t, [0, 0.02, 0.04, 0.06, 0.08])
    np.testing.assert_allclose(frac, [1 / 5, 2 / 5, 3 / 5, 3 / 5, 4 / 5])
    # The closed form equals the integral of the CED curve.
    e2 = np.random.default_rng(0).uniform(0, 0.12, 500)
    t, frac = ced(e2, steps=20001)
    assert auc(e2) == pytest.approx(np.trapezoid(frac, t) / 0.08, abs=1e-3)


def test_ced_png(tmp_path):
    good = np.array([0.01, 0.02, 0.03])
    bad = np.array([0.05, 0.09, 0.2])
    path = tmp_path / "ced.png"
    img = draw_ced({"good": good, "bad": bad}, path)
    back = cv2.imread(str(path))
    assert back is not None and back.shape == img.shape == (480, 640, 3)
    assert (back != 255).any(axis=2).mean() > 0.02     # something was drawn


def test_a_face_finders_box_counts_for_a_face_only_when_near_it_and_of_its_size():
    from poselive.train.evaluate_face import matched_box
    face = (100.0, 100.0, 80.0, 80.0)
    near, far, huge = (110.0, 95.0, 90.0, 90.0), (200.0, 100.0, 80.0, 80.0), (60.0, 60.0, 170.0, 170.0)
    assert matched_box(face, [far, near, huge]) == near
    assert matched_box(face, [far, huge]) is None
    assert matched_box(face, []) is None
