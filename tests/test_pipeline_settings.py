"""Changing a running pipeline's settings, and drawing a live result, on the bundled demo clip."""
from __future__ import annotations

import dataclasses

import pytest

from poselive.app import DEMO_CLIP, render_live, stream
from poselive.filters import SmootherConfig
from poselive.tracking import TrackerConfig


@pytest.fixture(scope="module")
def pipe(shipped_body_models):
    from poselive.app import build_pipeline
    return build_pipeline("body", "auto")


def test_new_smoothing_keeps_the_tracks_and_new_tracking_starts_over(pipe):
    lives = list(stream(str(DEMO_CLIP), pipe, max_frames=6))
    ids = {p.track_id for p in lives[-1].result.people}
    assert ids, "the demo clip's pedestrians should be tracked after six frames"
    tracker, smoother = pipe.tracker, pipe.smoother

    pipe.reconfigure(dataclasses.replace(pipe.config, smoother=SmootherConfig(min_cutoff=0.3, beta=0.1)))
    assert pipe.smoother is not smoother and pipe.smoother.config.min_cutoff == 0.3
    assert pipe.tracker is tracker
    more = list(stream(str(DEMO_CLIP), pipe, max_frames=2))
    # Same clip from its start: the people of frame 0 were last seen five frames later, so most ids return.
    assert ids & {p.track_id for p in more[0].result.people}

    pipe.reconfigure(dataclasses.replace(pipe.config, tracker=TrackerConfig(max_lost=5)))
    assert pipe.tracker is not tracker and pipe.tracker.config.max_lost == 5


def test_drawing_a_result_leaves_the_pipelines_stage_times_alone(pipe):
    live = next(iter(stream(str(DEMO_CLIP), pipe, max_frames=1)))
    before = dict(live.result.times.ms)
    img = render_live(live, hud=True)
    assert img.shape == live.result.frame.image.shape
    assert live.result.times.ms == before and "render" not in before
