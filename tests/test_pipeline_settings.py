"""Changing a running pipeline's settings, and drawing a live result, on the bundled demo clip."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from poselive.app import DEMO_CLIP
from poselive.live import draw, stream
from poselive.filters import SmootherConfig
from poselive.tracking import TrackerConfig


@pytest.fixture(scope="module")
def pipe(shipped_body_models):
    from poselive.live import build_pipeline
    return build_pipeline("body", "auto")


def test_new_smoothing_keeps_the_tracks_and_new_tracking_starts_over(pipe):
    lives = list(stream(str(DEMO_CLIP), pipe, max_frames=6))
    ids = {p.track_id for p in lives[-1].result.people}
    assert ids, "the demo clip's pedestrians should be tracked after six frames"
    tracker, smoother = pipe.tracker, pipe.smoother

    pipe.reconfigure(dataclasses.replace(pipe.config, smoother=SmootherConfig(min_cutoff=0.3, beta=0.1)))
    assert pipe.smoother is not smoother and pipe.smoother.config.min_cutoff == 0.3
    assert pipe.tracker is tracker
    more = list(stream(str(DEMO_CLIP), pipe, max_frames=6))
    # Same clip from its start: frame numbers went back, so the tracker starts over, and the same frames give the
    # same people the same ids (reported from their third frame on).
    assert ids & {p.track_id for p in more[-1].result.people}

    pipe.reconfigure(dataclasses.replace(pipe.config, tracker=TrackerConfig(max_lost=5)))
    assert pipe.tracker is not tracker and pipe.tracker.config.max_lost == 5


def test_drawing_a_result_leaves_the_pipelines_stage_times_alone(pipe):
    live = next(iter(stream(str(DEMO_CLIP), pipe, max_frames=1)))
    before = dict(live.result.times.ms)
    drawn = draw(live)
    assert drawn.image.shape == live.result.frame.image.shape and "render" in drawn.result.times.ms
    assert live.result.times.ms == before and "render" not in before


def _walker(x0: float, y0: float, h: float, score: float = 0.6):
    """A standing person seen from the front, feet at y0 + h, centred on x0, all joints confident."""
    from poselive.records import Person
    w = 0.3 * h
    ys = y0 + h * np.array([.05, .04, .04, .05, .05, .2, .2, .35, .35, .5, .5, .55, .55, .75, .75, .95, .95])
    xs = x0 + w * np.array([0, .1, -.1, .2, -.2, .5, -.5, .6, -.6, .6, -.6, .3, -.3, .3, -.3, .3, -.3])
    kp = np.c_[xs, ys, np.full(17, 0.8)].astype(np.float32)
    return Person(kp, (x0 - 0.6 * w, y0, 1.2 * w, h), score)


def test_duplicates_nested_in_a_body_go_but_walkers_side_by_side_stay():
    from poselive.duplicates import distinct_people
    body = _walker(100, 50, 200, score=0.6)
    # A crop that converged on the same man's head and shoulders: a small box inside his, same joints.
    kp = body.keypoints.copy()
    kp[7:, 2] = 0.1
    head = type(body)(kp + np.float32([2, 1, 0]), (70, 50, 60, 50), 0.7)
    assert distinct_people([body, head]) == [1]  # one survivor, the better scored
    # Two small walkers a shoulder's width apart: boxes overlap, hips are close, but neither box holds the other.
    a, b = _walker(100, 50, 90), _walker(125, 52, 90)
    assert distinct_people([a, b]) == [0, 1]
