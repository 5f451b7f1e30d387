"""Head pose: the mean face projected at known rotations through a known camera must come back within 2
degrees (and within a few degrees with 1 px of landmark noise), with the angle convention the docs state."""
import cv2
import numpy as np
import pytest

from poselive.headpose import (MEAN_FACE_MM, angles_from_rotation, camera_matrix, fit_head_pose, project_model,
                               rotation_from_angles)
from poselive.schemas import FACE68

IMAGE_WH = (640, 480)


def render(yaw, pitch, roll, tvec=(20.0, -10.0, 700.0), model=MEAN_FACE_MM):
    rvec = cv2.Rodrigues(rotation_from_angles(yaw, pitch, roll))[0]
    return project_model(rvec, np.array(tvec), IMAGE_WH, model)


def angle_errors(hp, yaw, pitch, roll):
    return np.abs([hp.yaw - yaw, hp.pitch - pitch, hp.roll - roll])


def test_mean_face_is_symmetric_and_in_the_stated_frame():
    perm = FACE68.flip_permutation()
    np.testing.assert_allclose(MEAN_FACE_MM[perm] * [-1, 1, 1], MEAN_FACE_MM, atol=0.051)
    assert np.linalg.norm(MEAN_FACE_MM[45] - MEAN_FACE_MM[36]) == pytest.approx(90.0, abs=0.2)
    np.testing.assert_array_equal(MEAN_FACE_MM[30], [0, 0, 0])           # origin at the nose tip
    assert MEAN_FACE_MM[45, 0] > 0 > MEAN_FACE_MM[36, 0]                  # x to the subject's left
    assert MEAN_FACE_MM[8, 1] > MEAN_FACE_MM[30, 1] > MEAN_FACE_MM[27, 1]  # y down: brow line, nose, chin
    assert (MEAN_FACE_MM[:, 2] >= 0).all()                                # nothing nearer the camera than the nose


def test_angles_round_trip_through_the_rotation_matrix():
    rng = np.random.default_rng(3)
    for yaw, pitch, roll in rng.uniform(-80, 80, (50, 3)):
        hp = angles_from_rotation(rotation_from_angles(yaw, pitch, roll))
        assert max(angle_errors(hp, yaw, pitch, roll)) < 1e-9


def test_convention_in_words():
    front = render(0, 0, 0)
    turned_left = render(25, 0, 0)   # subject turns to their own left: nose goes to the image right
    assert turned_left[30, 0] - turned_left[27:31, 0].mean() > 0
    assert (turned_left[30, 0] - (turned_left[0, 0] + turned_left[16, 0]) / 2) > \
        (front[30, 0] - (front[0, 0] + front[16, 0]) / 2) + 10
    up = render(0, 20, 0)            # looks up: nose tip rises towards the eyes in the image
    assert (up[30, 1] - up[[36, 45], 1].mean()) < (front[30, 1] - front[[36, 45], 1].mean()) - 10
    tilted = render(0, 0, 20)        # tilts towards own left shoulder: the left eye (image right) drops
    assert tilted[45, 1] > tilted[36, 1] + 10
    K = camera_matrix(IMAGE_WH)
    assert K[0, 0] == 640 and K[0, 2] == 319.5 and K[1, 2] == 239.5


@pytest.mark.parametrize("refine", [False, True])
def test_known_pose_is_recovered_within_2_degrees(refine):
    cases = [(30, -15, 10), (0, 0, 0), (-35, 20, -5)]
    rng = np.random.default_rng(0)
    cases += [tuple(a) for a in rng.uniform(-40, 40, (20, 3))]
    for yaw, pitch, roll in cases:
        tvec = (rng.uniform(-150, 150), rng.uniform(-100, 100), rng.uniform(450, 1500))
        fit = fit_head_pose(render(yaw, pitch, roll, tvec), IMAGE_WH, refine=refine)
        assert fit is not None
        hp, rvec, tvec_fit = fit
        assert max(angle_errors(hp, yaw, pitch, roll)) < 2.0, (yaw, pitch, roll, hp)
        assert tvec_fit.shape == (3, 1) and tvec_fit[2, 0] == pytest.approx(tvec[2], rel=0.05)


def test_one_pixel_noise_stays_within_a_few_degrees():
    rng = np.random.default_rng(1)
    worst = []
    for yaw, pitch, roll in rng.uniform(-40, 40, (40, 3)):
        xy = render(yaw, pitch, roll, (0.0, 0.0, rng.uniform(500, 900))) + rng.normal(0, 1.0, (68, 2))
        hp = fit_head_pose(xy, IMAGE_WH)[0]
        worst.append(max(angle_errors(hp, yaw, pitch, roll)))
    assert max(worst) < 4.0 and np.median(worst) < 1.5


def test_refinement_absorbs_a_wider_face_and_outliers():
    rng = np.random.default_rng(2)
    wide = MEAN_FACE_MM * [1.1, 1.0, 1.0]
    plain, refined = [], []
    for yaw, pitch, roll in rng.uniform(-40, 40, (30, 3)):
        xy = render(yaw, pitch, roll, (0.0, 0.0, 700.0), wide) + rng.normal(0, 0.5, (68, 2))
        xy[rng.choice(68, 3, replace=False)] += rng.normal(0, 15, (3, 2))
        plain.append(max(angle_errors(fit_head_pose(xy, IMAGE_WH, refine=False)[0], yaw, pitch, roll)))
        refined.append(max(angle_errors(fit_head_pose(xy, IMAGE_WH, refine=True)[0], yaw, pitch, roll)))
    assert np.mean(refined) < 0.6 * np.mean(plain)
    assert np.percentile(refined, 90) < 2.0


def test_unusable_landmarks_give_none():
    xy = render(0, 0, 0)
    xy[5] = np.nan
    assert fit_head_pose(xy, IMAGE_WH) is None
    assert fit_head_pose(xy[:10], IMAGE_WH) is None
