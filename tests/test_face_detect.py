"""Face boxes: from landmarks (the training and tracking convention), from a body's head keypoints, and from
the optional detectors, all landing on the same box."""
import importlib.util

import cv2
import numpy as np
import pytest

from poselive.boxes import box_iou as _box_iou
from poselive.face_detect import (FACE_BOX_SCALE, FaceDetectorUnavailable, detect_faces_dlib,
                                  detect_faces_haar, face_box_from_body, face_box_from_landmarks)


def face_data():
    """poselive.train.face_data (the face records), training code built on torch."""
    pytest.importorskip("torch", reason="torch is not installed (pip install 'poselive[train]')")
    from poselive.train import face_data
    return face_data


def box_iou(a, b) -> float:
    return float(_box_iou([a], [b])[0, 0])


@pytest.fixture(scope="module")
def val_faces(shared_data):
    fd = face_data()
    recs = [r for r in fd.face_records(shared_data) if fd.split_of_face(r) == "val"]
    if not recs:
        pytest.skip("no validation faces")
    return recs


def test_face_box_from_landmarks_is_a_centred_square_around_them():
    rng = np.random.default_rng(0)
    lm = rng.uniform((100, 50), (180, 170), (68, 2))      # 80 wide, 120 tall
    x, y, w, h = face_box_from_landmarks(lm)
    assert w == h == pytest.approx(FACE_BOX_SCALE * np.ptp(lm[:, 1]))
    lo, hi = lm.min(0), lm.max(0)
    np.testing.assert_allclose([x + w / 2, y + h / 2], (lo + hi) / 2)
    assert x <= lo[0] and y <= lo[1] and x + w >= hi[0] and y + h >= hi[1]
    lm3 = np.c_[lm, np.ones(68)]
    lm3[3, :2] = np.nan                                  # a lost point does not move the box
    assert face_box_from_landmarks(lm3) == face_box_from_landmarks(np.delete(lm, 3, 0))


def body_from_landmarks(lm, nose=True):
    kp = np.zeros((17, 3))
    n, le, re_ = face_data().coco_head_points(lm)
    kp[0, :2], kp[1, :2], kp[2, :2] = n, le, re_
    kp[[1, 2], 2] = 0.9
    kp[0, 2] = 0.9 if nose else 0.1
    return kp


def test_face_box_from_body_lands_on_the_face(val_faces):
    for nose in (True, False):
        ious = [box_iou(face_box_from_body(body_from_landmarks(r.keypoints, nose)), r.box_xywh) for r in val_faces]
        assert np.median(ious) > 0.75 and np.percentile(ious, 10) > 0.5


def test_face_box_from_body_needs_confident_head_points():
    kp = np.zeros((17, 3))
    assert face_box_from_body(kp) is None
    kp[1] = (100, 100, 0.9)                              # one eye alone says nothing about size
    assert face_box_from_body(kp) is None
    kp[3] = (140, 104, 0.9)                              # ...with its ear: a profile
    x, y, w, h = face_box_from_body(kp)
    assert w == h and 50 < w < 150 and y < 100 < y + h
    with pytest.raises(ValueError):
        face_box_from_body(np.zeros((68, 3)))


@pytest.mark.slow
def test_haar_detector_finds_faces_or_says_why(val_faces):
    if not hasattr(cv2, "CascadeClassifier"):   # OpenCV 5 moved the cascades out of the main modules
        with pytest.raises(FaceDetectorUnavailable, match="opencv-python-headless<5"):
            detect_faces_haar(cv2.imread(val_faces[0].image_path))
        return
    found = [max((box_iou(b, r.box_xywh) for b in detect_faces_haar(cv2.imread(r.image_path))), default=0)
             for r in val_faces[:40]]
    assert np.mean(np.array(found) > 0.5) > 0.7


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("dlib") is None, reason="dlib not installed (pip install dlib-bin)")
def test_dlib_hog_boxes_are_calibrated_to_the_face_box(val_faces):
    ious = []
    for r in val_faces[:60]:
        boxes = detect_faces_dlib(cv2.imread(r.image_path))
        if boxes:
            ious.append(max(box_iou(b, r.box_xywh) for b in boxes))
    assert len(ious) > 0.85 * 60 and np.median(ious) > 0.75
