"""Gestures fire on the pose they name, once per pose (start, then end), near the camera and further back, and
stay quiet for a person standing about; thresholds are body-relative, states are per track id. Only a player
fires: someone facing the camera, large enough, for a few frames; people walking past in a real street video
fire nothing (tests/test_pipeline_video.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from poselive.gestures import GESTURES, GestureConfig, GestureDetector
from poselive.records import Person
from poselive.schemas import COCO17

FPS = 30.0
FRAME_HEIGHT = 480
NEAR = dict(torso_px=110.0, cx=320.0, ground=460.0)   # a person filling much of a 640x480 frame
FAR = dict(torso_px=55.0, cx=120.0, ground=330.0)     # a player further back, half the size
TINY = dict(torso_px=18.0, cx=90.0, ground=200.0)     # someone small at the back of the room: no player


def pose(torso_px=110.0, cx=320.0, ground=460.0, left_arm=8.0, right_arm=8.0, crouch=0.0, lean_deg=0.0,
         lift=0.0, side_on=False, facing_away=False, rng=None, noise=0.01, score=0.9) -> np.ndarray:
    """A COCO-17 pose (17, 3) of a person facing the camera (their left is the image's right), built in
    torso units and scaled to `torso_px`: arms at `left_arm` / `right_arm` degrees from hanging straight
    down, raised out sideways (90: horizontal, 180: straight up); crouch 0..1 bends the thighs forwards up to
    80 degrees (the pelvis drops with them); lean_deg tilts the upper body towards the subject's left;
    lift raises the whole body (a jump), in torso lengths; side_on turns the person 90 degrees (shoulders
    and hips overlap); facing_away turns them 180 degrees (their left on the image's left); noise: keypoint
    jitter in torso lengths."""
    half_sh, half_hip = (0.05, 0.04) if side_on else (0.38, 0.25)
    thigh = shin = 0.85
    theta = math.radians(80.0 * crouch)
    knee_drop = thigh * math.cos(theta)
    hip_y = -(knee_drop + shin) - lift  # y grows downwards; the ground is 0
    k = np.zeros((17, 2))
    ix = COCO17.index
    k[ix("left_hip")], k[ix("right_hip")] = (half_hip, hip_y), (-half_hip, hip_y)
    k[ix("left_knee")], k[ix("right_knee")] = (half_hip + 0.05, hip_y + knee_drop), (-half_hip - 0.05, hip_y + knee_drop)
    k[ix("left_ankle")], k[ix("right_ankle")] = (half_hip + 0.05, -lift), (-half_hip - 0.05, -lift)
    # The upper body, relative to the hip midpoint before leaning.
    up = {"left_shoulder": (half_sh, -1.0), "right_shoulder": (-half_sh, -1.0), "nose": (0.0, -1.4),
          "left_eye": (0.08, -1.48), "right_eye": (-0.08, -1.48), "left_ear": (0.16, -1.45),
          "right_ear": (-0.16, -1.45)}
    for side, angle, out in (("left", left_arm, 1.0), ("right", right_arm, -1.0)):
        sx, sy = up[f"{side}_shoulder"]
        a = math.radians(angle)
        d = np.array([out * math.sin(a), math.cos(a)])
        up[f"{side}_elbow"] = tuple(np.array([sx, sy]) + 0.55 * d)
        up[f"{side}_wrist"] = tuple(np.array([sx, sy]) + 1.05 * d)
    c, s = math.cos(math.radians(lean_deg)), math.sin(math.radians(lean_deg))
    for name, (x, y) in up.items():
        # Rotating "up" (0, -1) towards +x (the subject's left) by lean_deg.
        k[ix(name)] = (x * c - y * s, x * s + y * c + hip_y)
    if facing_away:
        k[:, 0] = -k[:, 0]
    if rng is not None:
        k = k + rng.normal(0.0, noise, k.shape)
    xy = np.c_[cx + k[:, 0] * torso_px, ground + k[:, 1] * torso_px]
    return np.c_[xy, np.full(17, score)].astype(np.float32)


def person(kps: np.ndarray, track_id: int = 1) -> Person:
    x0, y0 = kps[:, :2].min(0)
    x1, y1 = kps[:, :2].max(0)
    return Person(kps, (float(x0), float(y0), float(x1 - x0), float(y1 - y0)), 0.9, track_id)


def run(frames: list[dict], where: dict, detector: GestureDetector | None = None, seed: int = 0,
        track_id: int = 1) -> list[tuple[int, str, str]]:
    """Feed one pose per frame (keyword arguments of `pose`) -> [(frame, name, phase), ...]."""
    det = detector or GestureDetector()
    rng = np.random.default_rng(seed)
    out = []
    for i, kw in enumerate(frames):
        for e in det.update([person(pose(**where, **kw, rng=rng), track_id)], i, i / FPS, FRAME_HEIGHT):
            assert e.track_id == track_id and e.frame == i
            out.append((i, e.name, e.phase))
    return out


def ramp(key: str, a: float, b: float, n: int, **fixed) -> list[dict]:
    return [{key: a + (b - a) * (i + 1) / n, **fixed} for i in range(n)]


def hold(n: int, **kw) -> list[dict]:
    return [dict(kw) for _ in range(n)]


def idle(n: int, phase: float = 0.0) -> list[dict]:
    """Standing about: arms swinging +-20 degrees, a little sway, a slight bob of the knees."""
    return [{"left_arm": 10 + 20 * math.sin(0.3 * i + phase), "right_arm": 10 + 20 * math.cos(0.25 * i + phase),
             "lean_deg": 4 * math.sin(0.1 * i), "crouch": 0.15 + 0.1 * math.sin(0.2 * i)} for i in range(n)]


def names(events, phase="start") -> list[str]:
    return [n for _, n, p in events if p == phase]


WHERE = pytest.mark.parametrize("where", [NEAR, FAR], ids=["near", "further"])


@WHERE
def test_standing_about_fires_nothing(where):
    assert run(idle(150), where) == []


@WHERE
def test_left_hand_raised_starts_and_ends_once(where):
    frames = idle(10) + ramp("left_arm", 10, 165, 5) + hold(20, left_arm=165) + ramp("left_arm", 165, 10, 5) + idle(15)
    ev = run(frames, where)
    assert [(n, p) for _, n, p in ev] == [("hand_raised_left", "start"), ("hand_raised_left", "end")]
    start, end = ev[0][0], ev[1][0]
    assert 10 <= start <= 18 and 36 <= end <= 45


@WHERE
def test_right_hand_is_the_subjects_right(where):
    frames = idle(10) + hold(15, right_arm=170) + idle(10)
    assert names(run(frames, where)) == ["hand_raised_right"]


@WHERE
def test_both_hands_up(where):
    frames = idle(10) + hold(15, left_arm=170, right_arm=170) + idle(10)
    ev = run(frames, where)
    assert sorted(names(ev)) == ["both_hands_up", "hand_raised_left", "hand_raised_right"]
    assert sorted(names(ev, "end")) == sorted(names(ev))


@WHERE
def test_t_pose(where):
    frames = idle(10) + ramp("left_arm", 10, 90, 4, right_arm=10) + hold(15, left_arm=90, right_arm=90) + idle(10)
    ev = run(frames, where)
    assert [(n, p) for _, n, p in ev] == [("t_pose", "start"), ("t_pose", "end")]


@WHERE
def test_crouch_and_standing_up_again_is_no_jump(where):
    frames = idle(10) + ramp("crouch", 0.1, 0.9, 6) + hold(15, crouch=0.9) + ramp("crouch", 0.9, 0.0, 4) + hold(20)
    ev = run(frames, where)
    assert [(n, p) for _, n, p in ev] == [("crouch", "start"), ("crouch", "end")]


@WHERE
def test_jump_after_a_dip(where):
    # Knees bend a little, then 12 frames in the air (a 0.4 s jump at 30 fps) peaking 0.5 torso lengths up.
    air = [{"lift": 0.5 * math.sin(math.pi * (i + 1) / 13)} for i in range(12)]
    frames = idle(20) + ramp("crouch", 0.15, 0.4, 3) + air + hold(20)
    ev = run(frames, where)
    assert [(n, p) for _, n, p in ev] == [("jump", "start"), ("jump", "end")]


@WHERE
@pytest.mark.parametrize("sign,name", [(1, "lean_left"), (-1, "lean_right")])
def test_lean(where, sign, name):
    frames = idle(10) + ramp("lean_deg", 0, 22 * sign, 5) + hold(15, lean_deg=22 * sign) + hold(10)
    ev = run(frames, where)
    assert [(n, p) for _, n, p in ev] == [(name, "start"), (name, "end")]


def test_same_gesture_near_and_far_fires_on_the_same_frames():
    frames = (idle(10) + hold(12, left_arm=170, right_arm=170) + idle(8) + ramp("crouch", 0.1, 0.9, 6)
              + hold(10, crouch=0.9) + hold(10) + hold(10, lean_deg=-25) + hold(10))
    near, far = run(frames, NEAR), run(frames, FAR)
    assert near == far and len(near) == 10  # 3 hand states, crouch, lean: each a start and an end


def test_hovering_between_the_thresholds_does_not_flicker():
    """Raised (rise 0.6), then hovering at rise 0.36..0.46, between the end (0.3) and start (0.5) thresholds,
    with noise: one start, and one end only when the hand comes down."""
    rng = np.random.default_rng(1)
    hover = [{"left_arm": float(rng.uniform(110.5, 116.0))} for _ in range(60)]
    frames = idle(5) + hold(6, left_arm=125) + hover + hold(10)
    assert [(n, p) for _, n, p in run(frames, NEAR)] == [("hand_raised_left", "start"), ("hand_raised_left", "end")]


def test_a_pose_held_for_fewer_frames_than_start_frames_fires_nothing():
    frames = idle(10)
    for _ in range(10):  # flicks of two frames up, two down
        frames += hold(2, left_arm=170) + hold(2)
    assert run(frames, NEAR) == []


@pytest.mark.parametrize("turn", ["side_on", "facing_away"])
def test_a_person_not_facing_the_camera_fires_nothing(turn):
    frames = (hold(10, **{turn: True}) + hold(15, left_arm=170, right_arm=170, lean_deg=25, **{turn: True})
              + ramp("crouch", 0.1, 0.9, 6, **{turn: True}) + hold(15, crouch=0.9, **{turn: True}))
    assert run(frames, NEAR) == []
    assert run(hold(10) + frames, NEAR) == []  # nor does a confirmed player once they turn


def test_a_small_person_at_the_back_fires_nothing():
    frames = idle(10) + hold(15, left_arm=170, right_arm=170) + idle(10) + hold(15, lean_deg=25) + hold(10)
    assert run(frames, TINY) == []
    assert len(names(run(frames, FAR))) == 4  # the same poses from a player: both hands (3 states) and a lean


def test_a_player_must_be_one_for_a_few_frames_before_gestures_count():
    """Someone who steps in with a hand already up starts the gesture once confirmed (confirm_frames), not
    on the first frame; a player who turns away ends what they were doing."""
    cfg = GestureConfig()
    ev = run(hold(20, left_arm=170) + hold(10, left_arm=170, side_on=True), NEAR)
    assert ev == [(cfg.confirm_frames - 1 + cfg.start_frames - 1, "hand_raised_left", "start"),
                  (20 + cfg.end_frames - 1, "hand_raised_left", "end")]


def test_states_are_per_track_and_a_lost_track_ends_its_gestures():
    det = GestureDetector(GestureConfig(forget_after_frames=5))
    rng = np.random.default_rng(2)
    events = []
    for i in range(40):
        a = person(pose(**NEAR, left_arm=170 if i >= 5 else 8, rng=rng), track_id=1)
        b = person(pose(torso_px=60, cx=520, ground=400, rng=rng), track_id=2)
        people = [a, b] if i < 20 else [b]  # track 1 leaves at frame 20
        events += det.update(people, i, i / FPS, FRAME_HEIGHT)
        if i == 15:
            assert det.active(1) == ("hand_raised_left",) and det.active(2) == ()
    assert [(e.track_id, e.name, e.phase) for e in events] == [(1, "hand_raised_left", "start"),
                                                               (1, "hand_raised_left", "end")]
    assert events[1].frame == 25  # forgotten after 5 frames unseen
    assert det.active_by_track() == {2: ()}


def test_callbacks():
    det = GestureDetector()
    got, everything = [], []
    det.on("hand_raised_right", got.append)

    @det.on("*")
    def _all(e):
        everything.append((e.name, e.phase))

    with pytest.raises(ValueError, match="unknown gesture"):
        det.on("wave", print)
    run(idle(5) + hold(10, right_arm=170, left_arm=170) + hold(10), NEAR, detector=det)
    assert [(e.name, e.phase, e.track_id) for e in got] == [("hand_raised_right", "start", 1),
                                                           ("hand_raised_right", "end", 1)]
    assert len(everything) == 6 and set(n for n, _ in everything) <= set(GESTURES)


def test_untracked_people_and_missing_keypoints_are_ignored():
    det = GestureDetector()
    kps = pose(**NEAR, left_arm=170)
    assert det.update([person(kps, track_id=-1)] * 5, 0, 0.0, FRAME_HEIGHT) == []
    blind = kps.copy()
    blind[:, 2] = 0.05  # nothing seen
    for i in range(10):
        assert det.update([person(blind)], i, i / FPS, FRAME_HEIGHT) == []
    assert det.active(1) == ()
