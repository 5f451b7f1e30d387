"""Kinect-style gestures from tracked bodies: hand raised (left / right), both hands up, T-pose, crouch (squat),
jump, lean left / right. Each gesture is a state per track id with a start and an end event.

Gestures are for a player facing the camera. A person's gestures are read only once they have been a player
for `confirm_frames` frames in a row: facing the camera (their left shoulder on the image's right, the
shoulders well apart) and large enough (a body size of at least `min_body_frac` of the frame's height). People
walking past, seen side-on, from behind or far off, fire nothing; a player who stops being one for
`end_frames` frames ends their gestures.

Every threshold is a fraction of the person's body size (`scale`: the torso length, shoulder midpoint to hip
midpoint, or 1.3 x the shoulder width when that is larger, as when the torso leans towards the camera), or an
angle, so a gesture reads the same whether the person stands near the camera or far from it. A gesture starts
once its start condition has held for `start_frames` frames in a row and ends once a looser end condition has
held for `end_frames` frames (hysteresis), so a pose on the edge of a threshold does not flicker. "Left" and
"right" are the subject's own (COCO's convention): a person facing the camera raising their left hand raises
the hand on the image's right.

    detector = GestureDetector()
    detector.on("jump", lambda e: print("jump!", e.track_id))
    for live in poselive.stream("0"):
        r = live.result
        detector.update(r.people, r.frame.index, r.frame.video_time, r.frame.image.shape[0])

Runs after tracking (it needs Person.track_id; untracked people, track_id < 0, are ignored); it knows records
and schemas only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from poselive.records import Person
from poselive.schemas import COCO17

GESTURES = ("hand_raised_left", "hand_raised_right", "both_hands_up", "t_pose", "crouch", "jump",
            "lean_left", "lean_right")

_K = {name: COCO17.index(name) for name in (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")}


@dataclass(frozen=True)
class GestureConfig:
    """Thresholds in body-size units (see the module docstring) unless named _deg. Each gesture has a start
    threshold and a looser end threshold.

    hand_raise_*: wrist above its own shoulder (the nose is about 0.4 above the shoulders);
    t_pose_reach_*: wrist out sideways from its shoulder (an outstretched arm reaches about 1.0);
    t_pose_level_*: the most the wrist and elbow may sit above or below shoulder height;
    crouch_thigh_*: knee below hip (about 0.85 standing, about 0 with thighs level);
    jump_rise_*: hips above where they rest when standing; jump_ankle_rise: the ankles must leave the floor
    too (when visible), so stretching up or standing from a crouch is no jump; max_jump_s: a longer "jump"
    is the person having moved (the resting height is taken again);
    lean_*_deg: torso axis (hip midpoint to shoulder midpoint) from vertical;
    start_frames / end_frames: frames in a row a condition must hold (jump_frames for the jump, which is
    short); forget_after_frames: a track not seen for longer ends its gestures and is dropped;
    min_keypoint_score: keypoints scored lower count as not seen;
    min_body_frac: the smallest body size, as a fraction of the frame's height, of a player (walkers in the
    street scene of vtest.avi measure 0.01-0.08, median 0.04; a player 4 m from a webcam about 0.15);
    facing_shoulders: how far apart the shoulders must be, left on the image's right, for a person to face the
    camera (side-on they overlap); confirm_frames: frames in a row a person must be a player before their
    gestures are read."""
    hand_raise_start: float = 0.5
    hand_raise_end: float = 0.3
    t_pose_reach_start: float = 0.75
    t_pose_reach_end: float = 0.55
    t_pose_level_start: float = 0.3
    t_pose_level_end: float = 0.45
    crouch_thigh_start: float = 0.45
    crouch_thigh_end: float = 0.6
    jump_rise_start: float = 0.2
    jump_rise_end: float = 0.08
    jump_ankle_rise: float = 0.12
    max_jump_s: float = 1.5
    lean_start_deg: float = 15.0
    lean_end_deg: float = 8.0
    start_frames: int = 3
    end_frames: int = 3
    jump_frames: int = 2
    forget_after_frames: int = 15
    min_keypoint_score: float = 0.3
    min_body_frac: float = 0.1
    facing_shoulders: float = 0.25
    confirm_frames: int = 8


@dataclass(frozen=True)
class GestureEvent:
    """A gesture starting or ending. phase: "start" or "end"; time: seconds on the clock given to
    GestureDetector.update (the frame's); frame: that frame's index."""
    track_id: int
    name: str
    phase: str
    time: float
    frame: int


@dataclass(frozen=True)
class _Body:
    """One person's pose in one frame, reduced to what the rules read. Heights are "up" in body-size units
    (image y grows downwards, these grow upwards); None where the keypoints are not seen."""
    wrist_rise: tuple[float | None, float | None]   # (left, right): wrist above its shoulder
    reach: tuple[float | None, float | None]        # wrist out sideways from its shoulder, away from the body
    arm_level: tuple[float | None, float | None]    # largest |height| of elbow and wrist relative to shoulder
    thigh_drop: float | None                        # knee below hip
    hip_rise: float | None                          # hips above their resting height
    ankle_rise: float | None                        # ankles above their resting height
    lean_deg: float | None                          # torso from vertical, positive towards the subject's left
    facing: bool                                    # facing the camera (left shoulder on the image's right)


class _Track:
    def __init__(self):
        self.active: dict[str, bool] = dict.fromkeys(GESTURES, False)
        self.run: dict[str, int] = dict.fromkeys(GESTURES, 0)  # frames in a row the pending change has held
        self.last_frame = -1
        self.scale: float | None = None
        self.rest_hip_y: float | None = None
        self.rest_ankle_y: float | None = None
        self.jump_since = 0.0
        self.player = False    # confirmed as a player: facing the camera and large enough (module docstring)
        self.player_run = 0    # frames in a row the person was (or, once confirmed, was not) a player


def _seen(kps: np.ndarray, name: str, min_score: float) -> np.ndarray | None:
    k = kps[_K[name]]
    return k[:2].astype(np.float64) if k[2] >= min_score else None


def _mean(*points):
    pts = [p for p in points if p is not None]
    return None if not pts else sum(pts) / len(pts)


def _body_scale(kps: np.ndarray, min_score: float) -> float | None:
    """Torso length, or 1.3 x shoulder width when larger; None when neither can be measured (image px)."""
    ls, rs = _seen(kps, "left_shoulder", min_score), _seen(kps, "right_shoulder", min_score)
    lh, rh = _seen(kps, "left_hip", min_score), _seen(kps, "right_hip", min_score)
    sizes = []
    shoulders, hips = _mean(ls, rs), _mean(lh, rh)
    if shoulders is not None and hips is not None:
        sizes.append(float(np.hypot(*(shoulders - hips))))
    if ls is not None and rs is not None:
        sizes.append(1.3 * float(np.hypot(*(ls - rs))))
    size = max(sizes, default=0.0)
    return size if size > 1e-6 else None


class GestureDetector:
    """Per-track gesture states from tracked people, frame after frame (see the module docstring).

    `update()` returns this frame's start / end events and calls the callbacks registered with `on()`;
    `active(track_id)` tells which gestures a person is making now (what a game polls each frame)."""

    def __init__(self, config: GestureConfig = GestureConfig()):
        self.config = config
        self._tracks: dict[int, _Track] = {}
        self._callbacks: dict[str, list[Callable[[GestureEvent], None]]] = {}
        self._frame = -1

    def on(self, name: str, callback: Callable[[GestureEvent], None] | None = None):
        """Call `callback(event)` for every start and end of gesture `name` (one of GESTURES, or "*" for
        all). Without a callback, returns a decorator: `@detector.on("jump")`."""
        if name != "*" and name not in GESTURES:
            raise ValueError(f"unknown gesture {name!r}; choose from {', '.join(GESTURES)} or '*'")
        if callback is None:
            return lambda fn: self.on(name, fn)
        self._callbacks.setdefault(name, []).append(callback)
        return callback

    def reset(self) -> None:
        self._tracks.clear()
        self._frame = -1

    def active(self, track_id: int) -> tuple[str, ...]:
        """Names of the gestures track `track_id` is making now (in GESTURES order)."""
        tr = self._tracks.get(track_id)
        return () if tr is None else tuple(n for n in GESTURES if tr.active[n])

    def active_by_track(self) -> dict[int, tuple[str, ...]]:
        return {tid: self.active(tid) for tid in self._tracks}

    def update(self, people: list[Person], frame_index: int, time_s: float, frame_height: int
               ) -> list[GestureEvent]:
        """people: this frame's tracked Person records (keypoints in image px); frame_index: the frame's
        index (increasing; a smaller one means the source restarted and all state is dropped); time_s: the
        frame's time in seconds; frame_height: the frame's height in px (for min_body_frac). Returns the
        events of this frame, in order."""
        if frame_index < self._frame:
            self.reset()
        self._frame = frame_index
        events: list[GestureEvent] = []
        for p in people:
            if p.track_id < 0:
                continue
            tr = self._tracks.get(p.track_id)
            if tr is None:
                tr = self._tracks[p.track_id] = _Track()
            tr.last_frame = frame_index
            body = self._measure(tr, np.asarray(p.keypoints))
            is_player = (body is not None and body.facing
                         and tr.scale >= self.config.min_body_frac * frame_height)
            if self._confirm(p.track_id, tr, is_player, frame_index, time_s, events) and is_player:
                self._step(p.track_id, tr, body, frame_index, time_s, events)
        for tid in [t for t, tr in self._tracks.items()
                    if frame_index - tr.last_frame > self.config.forget_after_frames]:
            # Gone: whatever it was doing has ended (a client must not be left with a raised hand forever).
            tr = self._tracks.pop(tid)
            events += [GestureEvent(tid, n, "end", time_s, frame_index) for n in GESTURES if tr.active[n]]
        for e in events:
            for cb in self._callbacks.get(e.name, []) + self._callbacks.get("*", []):
                cb(e)
        return events

    # ------------------------------------------------------------------------------------------ internals
    def _confirm(self, tid: int, tr: _Track, is_player: bool, frame: int, t: float,
                 events: list[GestureEvent]) -> bool:
        """Whether track `tid` counts as a player now, with hysteresis: it becomes one after confirm_frames
        frames in a row as a player, and stops after end_frames frames in a row not one (ending its gestures);
        in between, a frame that does not look like a player is read as no frame at all."""
        cfg = self.config
        tr.player_run = 0 if is_player == tr.player else tr.player_run + 1
        if tr.player_run >= (cfg.end_frames if tr.player else cfg.confirm_frames):
            tr.player, tr.player_run = not tr.player, 0
            if not tr.player:
                events += [GestureEvent(tid, n, "end", t, frame) for n in GESTURES if tr.active[n]]
                tr.active = dict.fromkeys(GESTURES, False)
                tr.run = dict.fromkeys(GESTURES, 0)
        return tr.player

    def _measure(self, tr: _Track, kps: np.ndarray) -> _Body | None:
        cfg = self.config
        ms = cfg.min_keypoint_score
        scale = _body_scale(kps, ms)
        if scale is None:
            return None
        # Smoothed a little: one bad shoulder should not move every threshold at once.
        tr.scale = scale if tr.scale is None else 0.7 * tr.scale + 0.3 * scale
        s = tr.scale
        pt = {name: _seen(kps, name, ms) for name in _K}
        ls, rs = pt["left_shoulder"], pt["right_shoulder"]
        # The subject's left, as an image x direction: +1 when facing the camera. Unknown when the shoulders
        # (nearly) overlap: the person is side-on, and sideways gestures cannot be read.
        left_dir = None
        if ls is not None and rs is not None and abs(ls[0] - rs[0]) > cfg.facing_shoulders * s:
            left_dir = 1.0 if ls[0] > rs[0] else -1.0

        rise, reach, level = [], [], []
        for side, outward in (("left", left_dir), ("right", None if left_dir is None else -left_dir)):
            sh, el, wr = pt[f"{side}_shoulder"], pt[f"{side}_elbow"], pt[f"{side}_wrist"]
            rise.append(None if sh is None or wr is None else (sh[1] - wr[1]) / s)
            reach.append(None if sh is None or wr is None or outward is None else (wr[0] - sh[0]) * outward / s)
            level.append(None if sh is None or wr is None or el is None
                         else max(abs(wr[1] - sh[1]), abs(el[1] - sh[1])) / s)

        drops = [(pt[f"{side}_knee"][1] - pt[f"{side}_hip"][1]) / s for side in ("left", "right")
                 if pt[f"{side}_knee"] is not None and pt[f"{side}_hip"] is not None]
        thigh_drop = sum(drops) / len(drops) if drops else None

        hips = _mean(pt["left_hip"], pt["right_hip"])
        ankles = _mean(pt["left_ankle"], pt["right_ankle"])
        hip_rise = ankle_rise = None
        if hips is not None:
            if tr.rest_hip_y is None:
                tr.rest_hip_y = hips[1]
            hip_rise = (tr.rest_hip_y - hips[1]) / s
        if ankles is not None:
            if tr.rest_ankle_y is None:
                tr.rest_ankle_y = ankles[1]
            ankle_rise = (tr.rest_ankle_y - ankles[1]) / s
        # The resting height follows the person while they stand about (quickly when close to it, slowly
        # otherwise, so someone who walks towards the camera is followed); never while jumping or crouching.
        if not (tr.active["jump"] or tr.active["crouch"]):
            for attr, now, r in (("rest_hip_y", hips, hip_rise), ("rest_ankle_y", ankles, ankle_rise)):
                if now is not None:
                    alpha = 0.2 if abs(r) < 0.1 else 0.02
                    setattr(tr, attr, getattr(tr, attr) + alpha * (now[1] - getattr(tr, attr)))

        lean = None
        shoulders = _mean(ls, rs)
        if shoulders is not None and hips is not None and left_dir is not None:
            dx, up = (shoulders[0] - hips[0]) * left_dir, hips[1] - shoulders[1]
            lean = math.degrees(math.atan2(dx, up))
        return _Body(tuple(rise), tuple(reach), tuple(level), thigh_drop, hip_rise, ankle_rise, lean,
                     left_dir == 1.0)

    def _conditions(self, b: _Body) -> dict[str, tuple[bool | None, bool | None]]:
        """Per gesture: (start condition, end condition); None where the keypoints needed are not seen."""
        cfg = self.config

        def cmp(v, op, thr):
            return None if v is None else bool(v >= thr if op == ">=" else v <= thr)

        def both(a, b_):
            return None if a is None or b_ is None else a and b_

        def either(a, b_):
            if a is True or b_ is True:
                return True
            return None if a is None or b_ is None else False

        up = [cmp(r, ">=", cfg.hand_raise_start) for r in b.wrist_rise]
        down = [cmp(r, "<=", cfg.hand_raise_end) for r in b.wrist_rise]
        t_on = [both(cmp(r, ">=", cfg.t_pose_reach_start), cmp(lv, "<=", cfg.t_pose_level_start))
                for r, lv in zip(b.reach, b.arm_level)]
        t_off = [either(cmp(r, "<=", cfg.t_pose_reach_end), cmp(lv, ">=", cfg.t_pose_level_end))
                 for r, lv in zip(b.reach, b.arm_level)]
        jump_on = cmp(b.hip_rise, ">=", cfg.jump_rise_start)
        if jump_on and b.ankle_rise is not None:
            jump_on = b.ankle_rise >= cfg.jump_ankle_rise
        lean = b.lean_deg
        return {
            "hand_raised_left": (up[0], down[0]),
            "hand_raised_right": (up[1], down[1]),
            "both_hands_up": (both(up[0], up[1]), either(down[0], down[1])),
            "t_pose": (both(t_on[0], t_on[1]), either(t_off[0], t_off[1])),
            "crouch": (cmp(b.thigh_drop, "<=", cfg.crouch_thigh_start), cmp(b.thigh_drop, ">=", cfg.crouch_thigh_end)),
            "jump": (jump_on, cmp(b.hip_rise, "<=", cfg.jump_rise_end)),
            "lean_left": (cmp(lean, ">=", cfg.lean_start_deg), cmp(lean, "<=", cfg.lean_end_deg)),
            "lean_right": (cmp(None if lean is None else -lean, ">=", cfg.lean_start_deg),
                           cmp(None if lean is None else -lean, "<=", cfg.lean_end_deg)),
        }

    def _step(self, tid: int, tr: _Track, body: _Body, frame: int, t: float, events: list[GestureEvent]) -> None:
        cfg = self.config
        for name, (start, end) in self._conditions(body).items():
            frames = cfg.jump_frames if name == "jump" else (cfg.end_frames if tr.active[name] else cfg.start_frames)
            if tr.active[name] and name == "jump" and t - tr.jump_since > cfg.max_jump_s:
                end = True  # hips "up" for this long: the person moved, not jumped
                frames = 1
                tr.rest_hip_y = tr.rest_ankle_y = None
            change = end if tr.active[name] else start
            if change is None:
                continue  # not seen this frame: neither confirms nor breaks the run
            tr.run[name] = tr.run[name] + 1 if change else 0
            if tr.run[name] >= frames:
                tr.active[name] = not tr.active[name]
                tr.run[name] = 0
                if name == "jump" and tr.active[name]:
                    tr.jump_since = t
                events.append(GestureEvent(tid, name, "start" if tr.active[name] else "end", t, frame))
