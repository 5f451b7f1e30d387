"""The live face stage's work per frame, with stand-ins for the face network and the Haar detector (no weights
needed): a frame with no head, no known face and nothing from Haar runs no landmark work, and once a face is
known the Haar cascade looks over the whole frame only every `scan_every` frames, around the face between."""
from __future__ import annotations

import numpy as np
import pytest

import poselive.face_estimator as fe
from poselive.face_detect import FACE_BOX_SCALE
from poselive.headpose import MEAN_FACE_MM


class CountingLandmarks:
    """Stands in for the face network: counts its calls and draws a frontal mean face in each box."""

    def __init__(self, *args, **kwargs):
        self.crops = 0
        self.calls = 0

    def estimate(self, image, boxes_xywh, flip=False):
        self.calls += 1
        self.crops += len(boxes_xywh)
        out = []
        mean = MEAN_FACE_MM[:, :2] - (MEAN_FACE_MM[:, :2].min(0) + MEAN_FACE_MM[:, :2].max(0)) / 2
        side = FACE_BOX_SCALE * np.ptp(mean, 0).max()
        for x, y, w, h in boxes_xywh:  # landmarks whose face box is the box they were cut from: a still face
            xy = np.array([x + w / 2, y + h / 2]) + mean * (w / side)
            out.append(np.column_stack([xy, np.full(68, 0.9)]))
        return np.asarray(out).reshape(-1, 68, 3)


@pytest.fixture
def stage(monkeypatch):
    """A FaceStage on a 640x480 frame whose Haar detector finds whatever `haar_finds` holds; every Haar call's
    region (None: the whole frame) goes to `haar_regions`."""
    monkeypatch.setattr(fe, "KeypointModel", CountingLandmarks)
    st = fe.FaceStage(smoothing=False)
    st.haar_finds, st.haar_regions = [], []

    def haar(image, region=None):
        st.haar_regions.append((st.frame, region))
        return list(st.haar_finds)
    monkeypatch.setattr(st.estimator, "detect", haar)
    return st


def run(stage, frames, image):
    seen = []
    for i in frames:
        stage.frame = i
        seen.append(stage(image, [], i))
    return seen


def test_frames_with_no_face_do_no_landmark_work(stage):
    image = np.zeros((480, 640, 3), np.uint8)
    seen = run(stage, range(25), image)
    assert seen == [[]] * 25
    assert stage.estimator.landmarks.calls == 0, "the face network ran on frames with no face"
    # While no face is known, the whole frame is searched every detect_every frames.
    assert stage.haar_regions == [(0, None), (10, None), (20, None)]


def test_a_known_face_is_searched_for_around_it_and_the_whole_frame_rarely(stage):
    image = np.zeros((480, 640, 3), np.uint8)
    stage.haar_finds = [(250.0, 150.0, 120.0, 120.0)]
    seen = run(stage, range(61), image)
    assert all(len(f) == 1 for f in seen), [len(f) for f in seen]
    assert all(f[0].head_pose is not None for f in seen), "head pose for every face with landmarks"
    # One crop a frame: the Haar box and last frame's landmarks land on one face.
    assert stage.estimator.landmarks.crops == 61
    whole = [i for i, r in stage.haar_regions if r is None]
    near = [(i, r) for i, r in stage.haar_regions if r is not None]
    assert whole == [0, 30, 60]
    assert [i for i, _ in near] == [10, 20, 40, 50]
    x, y, w, h = near[0][1]
    face = seen[9][0].bbox
    assert x < face[0] and y < face[1] and x + w > face[0] + face[2] and y + h > face[1] + face[3]
