"""The stream's wire format: one JSON object per frame, the same over WebSocket and UDP (and read by the OSC
publisher), versioned by `schema_version`.

    {"type": "frame", "schema_version": 1, "frame": 42, "time": 1732530000.123, "video_time": 1.4,
     "width": 640, "height": 480, "fps": 29.8, "latency_ms": 35.2,
     "people": [{"track_id": 3, "score": 0.91, "bbox": [x, y, w, h],
                 "joints": [{"name": "nose", "x": 320.5, "y": 120.25, "nx": 0.5016, "ny": 0.2516,
                             "score": 0.97}, ...],            # all 17 COCO joints, always in COCO order
                 "gestures": ["hand_raised_left"],             # active now (state: survives a lost datagram)
                 "face": {"score": .., "bbox": [..], "landmarks": [[x, y, score], ...68],
                          "head_pose": {"yaw": .., "pitch": .., "roll": ..}}}],   # only when a face was found
     "faces": [...],          # faces that belong to nobody in "people" (e.g. --task face), same form as "face"
     "events": [{"type": "gesture", "track_id": 3, "name": "hand_raised_left", "phase": "start",
                 "time": 1732530000.123}]}

time: Unix seconds when the frame was captured; video_time: seconds into the source; x, y: image px (0-based
pixel centres); nx = (x + 0.5) / width, ny = (y + 0.5) / height: 0..1 across the image (a joint predicted
outside the frame may fall just outside); scores in 0..1 (a joint under about 0.3 is a guess). Numbers are
rounded as poselive/serialize.py says, the rule the JSONL follows. Face
landmarks follow the 68-point iBUG layout (poselive.schemas.FACE68); head pose angles are degrees.

UDP: a frame whose JSON is larger than `max_bytes` (default MAX_DATAGRAM_BYTES) is split at person
boundaries into several datagrams, each a complete frame message holding some of the people, with
"part": 1..n and "parts": n added (events ride in part 1). A single person too large for one datagram even
alone loses its face landmarks, then (at absurdly small limits) the person itself, and that datagram says
"truncated": true. Datagrams without "parts" are whole frames.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from poselive.gestures import GestureEvent
from poselive.records import Face, Person
from poselive.schemas import COCO17
from poselive.serialize import box_json, face_json, hundredths, joints_json, score, seconds

SCHEMA_VERSION = 1
# Below macOS's default UDP limit (9216 bytes) and far below the 65507 of IPv4; a frame of one person with
# face landmarks is about 3.5 kB, one body alone about 1.5 kB.
MAX_DATAGRAM_BYTES = 8192

_HEAD = tuple(COCO17.index(n) for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"))


@dataclass(frozen=True, eq=False)
class Encoded:
    """A frame message built once and handed to every publisher: `data` the object (read it, never change
    it: publishers share it), `text` its compact JSON, `frame` its index."""
    data: dict
    text: str
    frame: int


def encode(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


def gesture_json(event: GestureEvent, time_s: float) -> dict:
    """A gesture event on the stream; time_s: Unix seconds of the frame it fired on."""
    return {"type": "gesture", "track_id": int(event.track_id), "name": event.name, "phase": event.phase,
            "time": seconds(time_s)}


def _person_json(p: Person, width: int, height: int, gestures: tuple[str, ...]) -> dict:
    return {"track_id": int(p.track_id), "score": score(p.score), "bbox": box_json(p.bbox),
            "joints": joints_json(p.points, COCO17.keypoints, width, height), "gestures": list(gestures)}


def match_faces(people: list[Person], faces: list[Face], min_score: float = 0.3) -> dict[int, int]:
    """{face index: person index} for faces holding the most of a person's seen head keypoints (nose, eyes,
    ears) inside their box grown by 20%; each person gets at most one face."""
    taken, out = set(), {}
    for fi, f in enumerate(faces):
        x, y, w, h = f.bbox
        x0, y0, x1, y1 = x - 0.2 * w, y - 0.2 * h, x + 1.2 * w, y + 1.2 * h
        best, best_n = -1, 0
        for pi, p in enumerate(people):
            if pi in taken:
                continue
            head = p.keypoints[list(_HEAD)]
            n = int(((head[:, 2] >= min_score) & (head[:, 0] >= x0) & (head[:, 0] <= x1)
                     & (head[:, 1] >= y0) & (head[:, 1] <= y1)).sum())
            if n > best_n:
                best, best_n = pi, n
        if best >= 0:
            taken.add(best)
            out[fi] = best
    return out


def frame_message(frame_index: int, time_s: float, video_time: float, width: int, height: int,
                  people: list[Person], faces: list[Face] = (), events: list[GestureEvent] = (),
                  active: dict[int, tuple[str, ...]] | None = None, fps: float | None = None,
                  latency_ms: float | None = None) -> dict:
    """The message of one frame. people / faces: the pipeline's records (image px); time_s: Unix seconds of
    capture; events: gesture events fired on this frame; active: {track id: active gesture names}."""
    active = active or {}
    msg = {"type": "frame", "schema_version": SCHEMA_VERSION, "frame": int(frame_index),
           "time": seconds(time_s), "video_time": seconds(video_time),
           "width": int(width), "height": int(height)}
    if fps is not None:
        msg["fps"] = hundredths(fps)
    if latency_ms is not None:
        msg["latency_ms"] = hundredths(latency_ms)
    out_people = [_person_json(p, width, height, active.get(p.track_id, ())) for p in people]
    owner = match_faces(people, list(faces)) if faces and people else {}
    for fi, pi in owner.items():
        out_people[pi]["face"] = face_json(faces[fi])
    msg["people"] = out_people
    msg["faces"] = [face_json(f) for i, f in enumerate(faces) if i not in owner]
    msg["events"] = [gesture_json(e, time_s) for e in events]
    return msg


def _size(obj) -> int:
    return len(encode(obj).encode())


def datagrams(message: dict, max_bytes: int = MAX_DATAGRAM_BYTES, text: str | None = None) -> list[bytes]:
    """The UDP datagrams of one frame message (see the module docstring): one when it fits in max_bytes,
    else parts split at person boundaries, each a complete frame message of at most max_bytes."""
    whole = (text if text is not None else encode(message)).encode()
    if len(whole) <= max_bytes:
        return [whole]
    header = {k: v for k, v in message.items() if k not in ("people", "faces", "events")}
    # Room for the part fields at their widest, and for empty lists that the items are packed into.
    empty = {**header, "people": [], "faces": [], "events": [], "part": 9999, "parts": 9999, "truncated": True}
    base = _size(empty)
    events = message.get("events", [])
    events_bytes = _size(events) - 2 if events else 0
    truncated = False
    if base + events_bytes > max_bytes:
        events, events_bytes, truncated = [], 0, True

    items: list[tuple[str, dict, int]] = []  # (list it goes in, item, its JSON size)
    for key in ("people", "faces"):
        for item in message.get(key, []):
            n = _size(item)
            if base + n > max_bytes and key == "people" and "face" in item:
                item = {k: v for k, v in item.items() if k != "face"}
                n, truncated = _size(item), True
            if base + n > max_bytes:
                truncated = True
                continue
            items.append((key, item, n))

    parts: list[list[tuple[str, dict, int]]] = [[]]
    used = base + events_bytes
    for it in items:
        # +1: the comma before every item but a list's first; counted always, so a part may end a byte early.
        if parts[-1] and used + it[2] + 1 > max_bytes:
            parts.append([])
            used = base
        parts[-1].append(it)
        used += it[2] + 1
    out = []
    for i, part in enumerate(parts):
        msg = {**header, "people": [it[1] for it in part if it[0] == "people"],
               "faces": [it[1] for it in part if it[0] == "faces"], "events": events if i == 0 else [],
               "part": i + 1, "parts": len(parts)}
        if truncated:
            msg["truncated"] = True
        out.append(encode(msg).encode())
    return out


def check_message(msg: dict) -> list[str]:
    """What is wrong with a received frame message (empty when well formed): for tests and clients."""
    problems = []
    for key, kind in (("type", str), ("schema_version", int), ("frame", int), ("time", (int, float)),
                      ("width", int), ("height", int), ("people", list), ("faces", list), ("events", list)):
        if not isinstance(msg.get(key), kind):
            problems.append(f"{key} missing or not {kind}")
    if problems:
        return problems
    if msg["type"] != "frame" or msg["schema_version"] != SCHEMA_VERSION:
        problems.append(f"not a version-{SCHEMA_VERSION} frame message")
    for p in msg["people"]:
        joints = p.get("joints", [])
        if not isinstance(p.get("track_id"), int) or [j.get("name") for j in joints] != list(COCO17.keypoints):
            problems.append("a person without a track_id or the 17 named joints")
            continue
        for j in joints:
            if not all(isinstance(j.get(k), (int, float)) for k in ("x", "y", "nx", "ny", "score")):
                problems.append(f"joint {j.get('name')} lacks x, y, nx, ny or score")
            elif abs(j["nx"] - (j["x"] + 0.5) / msg["width"]) > 1e-3 or abs(j["ny"] - (j["y"] + 0.5) / msg["height"]) > 1e-3:
                problems.append(f"joint {j['name']}: nx, ny do not match x, y")
        if not isinstance(p.get("gestures"), list):
            problems.append("a person without a gestures list")
    for e in msg["events"]:
        if e.get("type") != "gesture" or e.get("phase") not in ("start", "end") or not isinstance(e.get("name"), str):
            problems.append(f"malformed event {e}")
    return problems
