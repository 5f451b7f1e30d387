"""Hard negatives for the keypoint network: the boxes our detector finds where nobody is, mined from real street
scenes whose every pedestrian is boxed, never overlap a labelled person, and train as empty targets."""
from __future__ import annotations

import numpy as np
import pytest

from poselive.train.hard_negatives import MAX_PERSON_OVERLAP, clear_of_people, mine_records


def test_a_box_on_a_person_or_half_on_one_is_not_a_negative():
    people = np.array([[100.0, 100.0, 40.0, 100.0]])
    boxes = np.array([
        [100.0, 100.0, 40.0, 100.0],   # the person
        [120.0, 100.0, 40.0, 100.0],   # half on him
        [135.0, 100.0, 40.0, 100.0],   # beside him, reaching into the 20% margin
        [300.0, 100.0, 40.0, 100.0],   # far away: a lamp post
    ])
    assert clear_of_people(boxes, people).tolist() == [False, False, False, True]
    assert clear_of_people(boxes, np.zeros((0, 4))).all(), "a photo of nobody: every box is a negative"


def test_mined_street_boxes_lie_clear_of_every_labelled_pedestrian(shared_data, shipped_body_models, monkeypatch):
    """On CityPersons training scenes (every pedestrian boxed), the detector's boxes that survive lie clear of all
    of them, and there are some: poles, signs and cars the detector takes for people."""
    import poselive.train.hard_negatives as hn
    from poselive.estimator import PoseEstimator
    from poselive.train.det_data import det_items, det_split_of
    if not (shared_data / "body" / "citypersons").is_dir():
        pytest.skip("no body/citypersons in the shared data")
    monkeypatch.setattr(hn, "MINED_SETS", ("citypersons",))
    items = [it for it in det_items(shared_data) if it.dataset == "citypersons" and det_split_of(it) == "train"][:12]
    monkeypatch.setattr(hn, "det_items", lambda root: items)
    est = PoseEstimator("body-lite")
    recs = mine_records(lambda image, thr: est.detect(image, thr, False), shared_data)
    assert len(recs) >= 5, "the detector fires on nothing in a dozen street scenes"
    by_image = {it.image_path: it for it in items}
    for r in recs:
        it = by_image[r.image_path]
        people = np.concatenate([it.boxes_xywh, it.ignore_xywh])
        grown = np.c_[people[:, :2] - 0.2 * people[:, 2:], people[:, 2:] * 1.4]
        x, y, w, h = r.box_xywh
        ix = np.clip(np.minimum(x + w, grown[:, 0] + grown[:, 2]) - np.maximum(x, grown[:, 0]), 0, None)
        iy = np.clip(np.minimum(y + h, grown[:, 1] + grown[:, 3]) - np.maximum(y, grown[:, 1]), 0, None)
        assert (ix * iy).max(initial=0) <= MAX_PERSON_OVERLAP * w * h + 1e-6
        assert not r.keypoints[:, 2].any(), "a negative has no labelled joint"


def test_training_shows_a_mined_box_with_every_joint_empty():
    """KeypointTask cuts its empty crops from the mined boxes (hard_share of them) with an all-zero target that
    every joint is weighted on, so the network is taught 'nobody here' for what the detector mistook."""
    from poselive.nets.configs import BODY_LITE
    from poselive.train.augment import AugmentConfig
    from poselive.train.coco_data import CropCache
    from poselive.train.loop import KeypointTask
    S = 224
    image = np.zeros((1, S, S, 3), np.uint8)
    image[:, 60:170, 90:130] = (0, 0, 255)  # the "lamp post" the detector boxed: red on black
    hard = CropCache(image, np.zeros((1, 17, 3), np.float32), np.array([[90.0, 60.0, 40.0, 110.0]], np.float32),
                     np.ones(1, np.float32))
    people = CropCache(image, np.zeros((1, 17, 3), np.float32), np.array([[90.0, 60.0, 40.0, 110.0]], np.float32),
                       np.ones(1, np.float32))
    grey = np.full((3, 256, 256, 3), 128, np.uint8)
    no_photometric = AugmentConfig(gray_prob=0.0, noise_prob=0.0, blur_prob=0.0, occlusion_prob=0.0)
    task = KeypointTask(BODY_LITE, people, None, aug=no_photometric, empty_photos=grey, hard_empty=hard,
                        hard_share=1.0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        crop, target, weight = task.empty_crop(rng)
        assert crop.shape == (128, 96, 3)
        assert (crop[..., 2] > 150).mean() > 0.1, "the crop shows the mined box's content"
        assert not target.any() and (weight == 1).all()
    task.hard_share = 0.0
    crop, _, _ = task.empty_crop(rng)
    assert (crop[..., 2] > 150).mean() < 0.01, "without hard negatives the empty crops come from the empty photos"
