"""The shipped face model on clean held-out faces: 300-W AFW and HELEN faces of the validation split (never
trained on), boxes from their annotated landmarks, scored by inter-ocular NME as `poselive eval --task face`
scores them. The floors sit just above what the shipped weights measured, so a worse model fails here."""
import cv2
import numpy as np
import pytest

from poselive.weights import models_dir

pytest.importorskip("torch", reason="torch is not installed (the face records are training code)")

from poselive.face_metrics import FaceScores, nme  # noqa: E402

# face-lite's own landmarks on every 5th held-out face (28 faces: 12 AFW, 16 HELEN), one look (no flip test):
# measured NME 0.0591 with torch and with ONNX Runtime (2026-12-03; the weights before, 2026-11-25: 0.0634).
LIVE_NME_FLOOR = 0.061
# The same faces with the flip test (FaceEstimator's default without trees): measured 0.0576.
FLIP_TEST_NME_FLOOR = 0.059
# face-lite's look, then face-full's regression trees alone (as the live face stage runs it): measured 0.0454
# with torch and with ONNX Runtime (2026-12-03 22:20).
TREES_NME_FLOOR = 0.047
# Then face-full's patch network too, on the face and its mirror image, and its shape model, as `poselive
# predict --task face` runs it: measured 0.0383 with torch and with ONNX Runtime (2026-12-04 15:10).
FACE_FULL_NME_FLOOR = 0.040


@pytest.fixture(scope="module")
def face_lite():
    path = models_dir() / "face-lite.pt"
    if not path.exists():
        pytest.skip(f"shipped weights {path} are not there (ship them, or set POSELIVE_MODELS)")
    return path


def score(estimator, faces) -> FaceScores:
    pred = [estimator.estimate(cv2.imread(r.image_path), np.array([r.box_xywh]))[0].landmarks for r in faces]
    return FaceScores.of(nme(np.stack(pred), np.stack([r.keypoints for r in faces])))


def test_face_lite_alone_stays_under_its_measured_nme(held_out_faces, face_lite):
    from poselive.face_estimator import FaceEstimator
    s = score(FaceEstimator(face_lite, device="cpu", flip_test=False, trees=None), held_out_faces)
    assert s.nme < LIVE_NME_FLOOR, f"NME {s.nme:.4f} on {s.faces} held-out faces"


def test_the_flip_test_stays_under_its_measured_nme(held_out_faces, face_lite):
    from poselive.face_estimator import FaceEstimator
    s = score(FaceEstimator(face_lite, device="cpu", trees=None), held_out_faces)
    assert s.nme < FLIP_TEST_NME_FLOOR, f"NME {s.nme:.4f} on {s.faces} held-out faces"


def test_face_full_trees_as_the_live_stage_runs_them_stay_under_their_measured_nme(held_out_faces, face_lite):
    from poselive.face_estimator import FaceEstimator
    trees = models_dir() / "face-full.npz"
    if not trees.exists():
        pytest.skip(f"shipped trees {trees} are not there (ship them, or set POSELIVE_MODELS)")
    s = score(FaceEstimator(face_lite, device="cpu", trees=trees, refiner=None), held_out_faces)
    assert s.nme < TREES_NME_FLOOR, f"NME {s.nme:.4f} on {s.faces} held-out faces"


def test_face_full_as_predict_runs_it_stays_under_its_measured_nme(held_out_faces, face_lite, shipped_face_models):
    from poselive.face_estimator import FaceEstimator
    s = score(FaceEstimator(face_lite, device="cpu"), held_out_faces)
    assert s.nme < FACE_FULL_NME_FLOOR, f"NME {s.nme:.4f} on {s.faces} held-out faces"


# Photos of nobody (negatives/scene15) where OpenCV's Haar cascade boxes something: a quarter of the 1,758
# photos, searched on 2026-12-03, gave 11 boxes in 10 photos; face-lite's score kept 2 of them.
HAAR_FIRES_ON = ("bedroom/bedroom_test_image_0097.jpg", "forest/forest_test_image_0026.jpg",
                 "industrial/industrial_test_image_0192.jpg", "kitchen/kitchen_train_image_0059.jpg",
                 "office/office_test_image_0034.jpg", "office/office_test_image_0200.jpg",
                 "suburb/suburb_test_image_0120.jpg", "suburb/suburb_test_image_0178.jpg")


def test_photos_of_nobody_give_no_face_where_haar_boxes_something(shared_data, face_lite):
    from poselive.face_detect import detect_faces_haar
    from poselive.face_estimator import FaceEstimator
    paths = [shared_data / "negatives" / "scene15" / p for p in HAAR_FIRES_ON]
    if not all(p.exists() for p in paths):
        pytest.skip(f"the photos of nobody are not under {shared_data}/negatives/scene15")
    images = [cv2.imread(str(p)) for p in paths]
    assert sum(len(detect_faces_haar(im)) for im in images) >= len(paths)  # the cascade does box something
    est = FaceEstimator(face_lite, device="cpu")
    assert [len(est(im)) for im in images] == [0] * len(paths)
