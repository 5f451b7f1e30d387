"""The live face stage's work per frame, with stand-ins for the face network and the Haar detector (no weights
needed): a frame with no head, no known face and nothing from Haar runs no landmark work, and once a face is
known the Haar cascade looks over the whole frame only every `scan_every` frames, around the face between."""
from __future__ import annotations

import numpy as np
import pytest

import poselive.face_estimator as fe
from poselive.face_detect import FACE_BOX_SCALE
from poselive.headpose import MEAN_FACE_MM
from poselive.records import Person


class CountingLandmarks:
    """Stands in for the face network: counts its calls and draws a frontal mean face in each box."""

    def __init__(self, *args, **kwargs):
        self.crops = 0
        self.calls = 0
        self.score = 0.9

    def estimate(self, image, boxes_xywh, flip=False):
        self.calls += 1
        self.crops += len(boxes_xywh)
        out = []
        mean = MEAN_FACE_MM[:, :2] - (MEAN_FACE_MM[:, :2].min(0) + MEAN_FACE_MM[:, :2].max(0)) / 2
        side = FACE_BOX_SCALE * np.ptp(mean, 0).max()
        for x, y, w, h in boxes_xywh:  # landmarks whose face box is the box they were cut from: a still face
            xy = np.array([x + w / 2, y + h / 2]) + mean * (w / side)
            out.append(np.column_stack([xy, np.full(68, self.score)]))
        return np.asarray(out).reshape(-1, 68, 3)


@pytest.fixture
def stage(monkeypatch):
    """A FaceStage on a 640x480 frame whose Haar detector finds whatever `haar_finds` holds; every Haar call's
    region (None: the whole frame) goes to `haar_regions`."""
    monkeypatch.setattr(fe, "KeypointModel", CountingLandmarks)
    st = fe.FaceStage(smoothing=False, trees=None)
    st.haar_finds, st.haar_regions, st.haar_min_sizes = [], [], []

    def haar(image, region=None, min_size_px=40):
        st.haar_regions.append((st.frame, region))
        st.haar_min_sizes.append(min_size_px)
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
    seen = run(stage, range(91), image)
    assert seen == [[]] * 91
    assert stage.estimator.landmarks.calls == 0, "the face network ran on frames with no face"
    # While no face is known the whole frame is searched after detect_every frames, twice as long after each
    # fruitless pass, up to scan_every.
    assert stage.haar_regions == [(0, None), (20, None), (50, None), (80, None)]


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


def test_the_whole_frame_is_searched_only_for_faces_a_sixth_of_its_height():
    """The cascade's cost grows as the inverse square of the smallest face it looks for."""
    stage = fe.FaceStage.__new__(fe.FaceStage)
    stage.scan_min_face = 1 / 6
    assert stage._scan_min_face(np.zeros((480, 640, 3), np.uint8)) == 80
    assert stage._scan_min_face(np.zeros((120, 160, 3), np.uint8)) == 40  # never below the cascade's 40 px


def test_a_body_in_view_makes_the_whole_frame_search_as_rare_as_a_known_face(stage):
    """A body's head is looked at even while its face scores too low to keep (turned away), every faceless_every
    frames; the whole frame is searched only for a face with no body, every scan_every frames."""
    image = np.zeros((480, 640, 3), np.uint8)
    head = np.zeros((17, 3), np.float32)
    head[:5] = [[320, 200, 0.9], [335, 190, 0.9], [305, 190, 0.9], [350, 195, 0.9], [290, 195, 0.9]]
    body = Person(head, (250.0, 150.0, 140.0, 300.0), 0.9)
    stage.estimator.landmarks.score = 0.1
    seen = []
    for i in range(61):
        stage.frame = i
        seen.append(stage(image, [body], i))
    assert seen == [[]] * 61
    # A head with no face is looked at again every faceless_every frames while it stays put.
    assert stage.estimator.landmarks.crops == len(range(0, 61, stage.faceless_every)) == 16
    assert [i for i, r in stage.haar_regions if r is None] == [0, 30, 60]
    assert set(stage.haar_min_sizes) == {80}


def test_between_the_networks_looks_the_trees_follow_a_known_face(stage, monkeypatch):
    """With face-full's trees, the network looks at a known face every check_every frames (to score it and frame
    it afresh), and the trees follow it from its last landmarks in between; its id stays."""
    followed = []

    def follow(image, faces):
        followed.append((stage.frame, len(faces)))
        return list(faces)  # a still face: the trees put the landmarks back where they were
    monkeypatch.setattr(stage.estimator, "trees", object())
    monkeypatch.setattr(stage.estimator, "_placed_by_trees", lambda image, lms: lms)
    monkeypatch.setattr(stage.estimator, "follow", follow)
    image = np.zeros((480, 640, 3), np.uint8)
    stage.haar_finds = [(250.0, 150.0, 120.0, 120.0)]
    seen = run(stage, range(13), image)
    assert [len(f) for f in seen] == [1] * 13 and len({f[0].track_id for f in seen}) == 1
    assert stage.estimator.landmarks.crops == 4  # frames 0, 4, 8 and 12
    assert [i for i, n in followed if n] == [1, 2, 3, 5, 6, 7, 9, 10, 11]


def test_a_face_that_turns_back_is_looked_at_every_frame_again(stage):
    """Once the head shows a face, it is looked at every frame; while it shows none, every faceless_every."""
    image = np.zeros((480, 640, 3), np.uint8)
    head = np.zeros((17, 3), np.float32)
    head[:5] = [[320, 200, 0.9], [335, 190, 0.9], [305, 190, 0.9], [350, 195, 0.9], [290, 195, 0.9]]
    body = Person(head, (250.0, 150.0, 140.0, 300.0), 0.9)
    marks = stage.estimator.landmarks
    marks.score = 0.1
    looked = []
    for i in range(20):
        if i == 10:
            marks.score = 0.9  # the person turns to the camera
        before = marks.crops
        stage.frame = i
        faces = stage(image, [body], i)
        looked.append(marks.crops > before)
        if i >= 12:
            assert len(faces) == 1
    assert [i for i in range(10) if looked[i]] == [0, 4, 8]
    assert all(looked[12:]), "a head showing a face is looked at every frame"
