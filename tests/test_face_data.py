"""Face training data: records, the fixed split, and crop caches whose landmarks land on the faces."""
from dataclasses import replace

import cv2
import numpy as np
import pytest

# The face records and the face training task live in poselive.train.face_data, training code built on torch.
pytest.importorskip("torch", reason="torch is not installed (pip install 'poselive[train]')")

from poselive.face_detect import FACE_BOX_SCALE  # noqa: E402
from poselive.schemas import FACE68  # noqa: E402
from poselive.train.augment import augment_person  # noqa: E402
from poselive.train.coco_data import CACHE_CONTEXT, CACHE_SIZE, build_cache  # noqa: E402
from poselive.train.face_data import FACE_AUGMENT, face_records, photo_name, split_of_face  # noqa: E402

RIGHT_EYE, LEFT_EYE = slice(36, 42), slice(42, 48)


@pytest.fixture(scope="module")
def records(shared_data):
    recs = face_records(shared_data)
    if not recs:
        pytest.skip(f"no face sets under {shared_data}/face")
    return recs


@pytest.fixture(scope="module")
def sample_cache(records):
    # Every 25th 300-W face: about 50 faces from both sets, all poses.
    sample = [r for r in records if r.dataset != "ytf68"][::25] + [r for r in records if r.dataset == "ytf68"][::300]
    return sample, build_cache(sample, None)


def test_records_split_and_weights(records):
    by_set = {}
    for r in records:
        by_set.setdefault((r.dataset, split_of_face(r)), []).append(r)
    assert {k: len(v) for k, v in by_set.items()}.keys() >= {("afw", "val"), ("afw", "train"),
                                                            ("helen_train", "val"), ("ytf68", "train")}
    assert ("ytf68", "val") not in by_set
    val = [r for r in records if split_of_face(r) == "val"]
    assert 0.08 < len(val) / sum(r.dataset != "ytf68" for r in records) < 0.2
    # By photo: no photo has faces on both sides.
    val_photos = {(r.dataset, photo_name(r.image_path)) for r in val}
    assert not any((r.dataset, photo_name(r.image_path)) in val_photos
                   for r in records if split_of_face(r) == "train")
    assert {r.weight for r in records if r.dataset == "ytf68"} == {0.25}
    assert {r.weight for r in records if r.dataset != "ytf68"} == {1.0}
    assert all(r.keypoints.shape == (68, 3) and (r.keypoints[:, 2] == 2).all() for r in records[::50])


def test_cached_landmarks_land_on_the_face(sample_cache):
    sample, cache = sample_cache
    assert len(cache) == len(sample) and cache.images.shape[1:] == (CACHE_SIZE, CACHE_SIZE, 3)
    side = CACHE_SIZE / CACHE_CONTEXT
    darker_eyes, tilts = 0, []
    for img, kp, box in zip(cache.images, cache.keypoints, cache.boxes):
        xy = kp[:, :2]
        assert ((xy > 0) & (xy < CACHE_SIZE - 1)).all()
        # The face box sits in the middle of the cache at the expected size, and the landmarks fill it.
        np.testing.assert_allclose(box[:2] + box[2:] / 2, [(CACHE_SIZE - 1) / 2] * 2, atol=0.6)
        np.testing.assert_allclose(box[2:], [side, side], rtol=0.01)
        assert np.ptp(xy, axis=0).max() == pytest.approx(side / FACE_BOX_SCALE, rel=0.02)
        # Eye centres roughly level (photos of upright people) with the right eye on the image left.
        r_eye, l_eye = xy[RIGHT_EYE].mean(0), xy[LEFT_EYE].mean(0)
        assert r_eye[0] < l_eye[0]
        tilts.append(np.degrees(np.arctan2(l_eye[1] - r_eye[1], l_eye[0] - r_eye[0])))
        # The pixels agree: eyes are darker than the cheeks under them, in most faces.
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(float)

        def patch(p):
            x, y = np.round(p).astype(int)
            return gray[y - 2:y + 3, x - 2:x + 3].mean()
        eyes = patch(r_eye) + patch(l_eye)
        cheeks = patch((xy[1] + xy[31]) / 2) + patch((xy[15] + xy[35]) / 2)
        darker_eyes += eyes < cheeks
    assert max(np.abs(tilts)) < 35 and np.median(np.abs(tilts)) < 8
    assert darker_eyes >= 0.8 * len(cache)


def test_augmented_face_crops_keep_landmarks_inside(sample_cache):
    _, cache = sample_cache
    rng = np.random.default_rng(0)
    perm = FACE68.flip_permutation()
    inside = []
    for i in range(len(cache)):
        for _ in range(3):
            crop, kp = augment_person(cache.images[i], cache.boxes[i], cache.keypoints[i], (128, 128), perm,
                                      FACE_AUGMENT, rng, cache.images[0], half_body=False)
            assert crop.shape == (128, 128, 3) and kp.shape == (68, 3)
            inside.append(((kp[:, :2] >= 0) & (kp[:, :2] <= 127)).all(1).mean())
    assert np.mean(inside) > 0.98 and np.median(inside) == 1.0


def test_flipped_crops_relabel_the_eyes(sample_cache):
    _, cache = sample_cache
    rng = np.random.default_rng(0)
    always_flip = replace(FACE_AUGMENT, flip_prob=1.0, rotation_prob=0.0, occlusion_prob=0.0)
    for i in range(len(cache)):
        crop, kp = augment_person(cache.images[i], cache.boxes[i], cache.keypoints[i], (128, 128),
                                  FACE68.flip_permutation(), always_flip, rng, None, half_body=False)
        # Mirrored, the subject's right eye must still be the one on the image left (without the relabelling
        # it would be on the right), and the jaw still runs from the image left (0) to the right (16).
        assert kp[RIGHT_EYE, 0].mean() < kp[LEFT_EYE, 0].mean()
        assert kp[0, 0] < kp[16, 0]


@pytest.mark.slow
def test_face_task_trains_and_validates_by_nme(sample_cache, tmp_path):
    import torch  # noqa: F811 (checked at the top)

    from poselive.nets.configs import config_by_name
    from poselive.train.face_data import FaceTask
    from poselive.train.loop import TrainConfig, train
    _, cache = sample_cache
    torch.set_num_threads(1)
    task = FaceTask(config_by_name("face-lite"), cache, cache)
    assert task.half_body is False and task.aug == FACE_AUGMENT
    x, (target, weight) = task.batch(np.random.default_rng(0), 2)
    assert x.shape == (2, 3, 128, 128) and target.shape == (2, 68, 32, 32)
    # Labelled, inside the crop and weighted by the set: most of the 68 points count.
    assert (weight > 0).float().mean() > 0.9
    figures = train(task, tmp_path, max_steps=2, tc=TrainConfig(batch=2, val_every=2),
                    progress=False)
    assert figures["step"] == 2 and 0.0 <= figures["val"] <= 1.0
    assert (tmp_path / "last.pt").exists() and (tmp_path / "best.pt").exists()


def test_negative_crops_stay_clear_of_faces_and_teach_empty_heatmaps(sample_cache):
    """Negatives are cut around the faces (hair, necks, background) clear of the face box, and their target is
    every heatmap empty at full weight, so the network learns to score a non-face low."""
    from poselive.nets.configs import config_by_name
    from poselive.train.face_data import FaceTask, Negatives
    from poselive.transforms import MEAN_BGR_U8
    _, cache = sample_cache
    neg = Negatives.from_faces(cache)
    rng = np.random.default_rng(0)
    found = 0
    for j in range(len(neg)):
        box = neg.sample_box(rng, j)
        if box is None:
            continue
        found += 1
        x, y, w, h = box
        fx, fy, fw, fh = cache.boxes[j]
        inter = max(0, min(x + w, fx + fw) - max(x, fx)) * max(0, min(y + h, fy + fh) - max(y, fy))
        assert inter <= 0.2 * w * h
        patch = cache.images[j, int(y):int(y + h), int(x):int(x + w)]
        assert np.all(patch == MEAN_BGR_U8, axis=-1).mean() < 0.5   # mostly photo, not cache padding
    assert found >= 0.8 * len(neg)
    task = FaceTask(config_by_name("face-lite"), cache, None, negatives=(neg,), negative_prob=1.0)
    x, (target, weight) = task.batch(rng, 8)
    empty = target.amax((1, 2, 3)) == 0
    assert empty.sum() >= 6                                     # a failed draw falls back to a real face
    assert bool((weight[empty] == 1).all())


@pytest.mark.slow
def test_shipped_constants_are_what_the_training_faces_give(records):
    """MEAN_FACE_MM and the body face-box constants say they were fitted on the 300-W training faces: refit."""
    from poselive import face_detect
    from poselive.headpose import MEAN_FACE_MM
    from poselive.train.face_data import derive_mean_face_3d, fit_body_face_box
    train = [r for r in records if r.dataset != "ytf68" and split_of_face(r) == "train"]
    mean_face = derive_mean_face_3d(np.stack([r.keypoints[:, :2] for r in train]))
    assert np.abs(mean_face - MEAN_FACE_MM).max() < 0.2
    fit = fit_body_face_box(train)
    assert fit["down"] == pytest.approx(face_detect._BODY_DOWN, abs=0.01)
    assert fit["nose"] == pytest.approx(face_detect._BODY_NOSE, abs=0.01)
    assert fit["eyes_only_down"] == pytest.approx(face_detect._BODY_EYES_ONLY_DOWN, abs=0.01)
    assert fit["nose_weight"] == pytest.approx(face_detect._BODY_NOSE_WEIGHT, abs=0.01)
    assert fit["side_per_scale"] == pytest.approx(face_detect._BODY_SIDE_PER_SCALE, abs=0.01)


def test_adaptive_wing_loss_keeps_pulling_at_the_peaks_and_spares_the_background():
    import torch  # noqa: F811 (checked at the top)

    from poselive.train.face_data import adaptive_wing_loss
    target = torch.zeros(1, 1, 9, 9)
    target[0, 0, 4, 4] = 1.0
    assert float(adaptive_wing_loss(target.clone(), target).sum()) == 0.0

    def grad_at(y: float, error: float) -> float:
        pred = torch.tensor([[[[y + error]]]], requires_grad=True)
        adaptive_wing_loss(pred, torch.tensor([[[[y]]]])).sum().backward()
        return float(pred.grad)
    # Near a peak the pull stays strong as the error shrinks (L1-like); on the background small noise costs little.
    assert grad_at(1.0, 0.01) > 10 * grad_at(0.0, 0.01) > 0
    # The two pieces meet at theta (0.5): no jump in the loss.
    below, above = (float(adaptive_wing_loss(torch.tensor([[[[0.3 + d]]]]), torch.tensor([[[[0.3]]]])))
                    for d in (0.5 - 1e-4, 0.5 + 1e-4))
    assert above == pytest.approx(below, rel=1e-3)


def test_face_task_charges_non_face_crops_by_squared_error(sample_cache):
    import torch  # noqa: F811 (checked at the top)

    from poselive.nets.configs import config_by_name
    from poselive.train.face_data import FaceTask
    _, cache = sample_cache
    task = FaceTask(config_by_name("face-lite"), cache, cache)
    empty, weight = torch.zeros(1, 68, 32, 32), torch.ones(1, 68)
    faint = torch.full((1, 68, 32, 32), 0.1)
    # A faint response all over a crop with no face costs what KeypointTask's MSE (x100) charges for it.
    assert float(task.loss([faint], (empty, weight))) == pytest.approx(68 * 100 * 0.01, rel=1e-4)
