"""The stream server's promises, with real sockets on loopback (127.0.0.1 only): clients get well-formed frame
messages in order; a malformed, oversized, vanishing or never-reading client neither stops nor slows the
pipeline; gesture events reach the stream; nothing binds or sends off this machine without --allow-remote.
Every wait has a timeout."""
from __future__ import annotations

import argparse
import json
import re
import socket
import threading
import time

import numpy as np
import pytest

from poselive.errors import PoseliveError, WeightsError
from poselive.gestures import GestureEvent
from poselive.pipeline import FrameResult
from poselive.records import Face, Frame, HeadPose, Person, StageTimes
from poselive.schemas import COCO17
from poselive.sources import SyntheticSource
from poselive.publish.messages import (MAX_DATAGRAM_BYTES, SCHEMA_VERSION, check_message, datagrams, encode,
                                      frame_message)
from poselive.publish.server import StreamServer, is_loopback, parse_endpoint, run_stream, serve_command

websockets = pytest.importorskip("websockets", reason="the stream tests need the 'stream' extra (websockets)")
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

W, H = 640, 480
IMAGE = np.zeros((H, W, 3), np.uint8)


# ----------------------------------------------------------------------------------------------- helpers
def face_for(p: Person, track_id: int) -> Face:
    """A face whose box holds the person's head keypoints."""
    nose = p.keypoints[COCO17.index("nose")]
    box = (float(nose[0] - 30), float(nose[1] - 35), 60.0, 70.0)
    lm = np.c_[np.random.default_rng(track_id).uniform(0, 1, (68, 2)) * 60 + box[:2], np.full(68, 0.8)]
    return Face(lm.astype(np.float32), box, 0.8, HeadPose(10.0, -5.0, 2.5), track_id=track_id)


def scene_results(n: int, people: int = 2, faces: bool = False) -> list[FrameResult]:
    """Frames of the synthetic scene's walkers as tracked people (ids 1..people), optionally with faces."""
    scene = SyntheticSource(frames=n, people=min(people, 3), size=(W, H))
    out = []
    for i in range(n):
        kps = list(scene.keypoints(i))
        kps = (kps * 3)[:people]
        ps = [Person(k + [5 * t, 0, 0], (0.0, 0.0, 100.0, 200.0), 0.9, t + 1) for t, k in enumerate(kps)]
        fs = [face_for(p, p.track_id) for p in ps] if faces else []
        out.append(FrameResult(Frame(IMAGE, i, time.monotonic(), i / 30.0), ps, fs, StageTimes()))
    return out


def wait_until(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class Reader(threading.Thread):
    """A well-behaved WebSocket client collecting every message until the server closes or stop()."""

    def __init__(self, url: str, **options):
        super().__init__(daemon=True)
        self.url, self.options = url, options
        self.messages: list[dict] = []
        self.closed_code = None
        self.ws = None
        self._ready = threading.Event()
        self._halt = threading.Event()
        self.start()
        assert self._ready.wait(10), f"cannot connect to {url}"

    def run(self):
        try:
            with connect(self.url, open_timeout=5, close_timeout=1, **self.options) as ws:
                self.ws = ws
                self._ready.set()
                while not self._halt.is_set():
                    try:
                        text = ws.recv(timeout=0.2)
                    except TimeoutError:
                        continue
                    self.messages.append(json.loads(text))
        except ConnectionClosed as e:
            self.closed_code = e.rcvd.code if e.rcvd else None
        finally:
            self._ready.set()

    def stop(self):
        self._halt.set()
        self.join(5)


def raw_websocket(port: int, rcvbuf: int | None = None) -> socket.socket:
    """A client that does the WebSocket handshake by hand (so it can then misbehave)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0], head
    return s


def udp_receiver() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2.0)
    return s


def drain(sock: socket.socket, quiet_s: float = 0.5) -> list[bytes]:
    sock.settimeout(quiet_s)
    out = []
    try:
        while True:
            out.append(sock.recv(65536))
    except (TimeoutError, socket.timeout):
        return out


# ------------------------------------------------------------------------------------------ addresses
@pytest.mark.parametrize("text,host,port", [
    ("127.0.0.1:9000", "127.0.0.1", 9000), ("localhost:1234", "localhost", 1234), ("[::1]:8000", "::1", 8000),
    (":7000", "127.0.0.1", 7000), ("7000", "127.0.0.1", 7000), ("127.0.0.2", "127.0.0.2", 8765),
])
def test_loopback_addresses_are_accepted(text, host, port):
    e = parse_endpoint(text, "WebSocket")
    assert (e.host, e.port) == (host, port)


@pytest.mark.parametrize("text", ["0.0.0.0:8765", "192.168.1.20:9000", "[::]:8765", "example.com:9000",
                                  "10.0.0.1"])
@pytest.mark.parametrize("kind", ["WebSocket", "UDP", "OSC"])
def test_non_loopback_is_refused_without_allow_remote(text, kind):
    with pytest.raises(PoseliveError, match="not a loopback address.*--allow-remote") as e:
        parse_endpoint(text, kind)
    assert "\n" not in str(e.value)
    # With the flag the address is accepted (only parsed here: nothing is bound or sent).
    assert parse_endpoint(text, kind, allow_remote=True).port > 0
    assert not is_loopback(text.rsplit(":", 1)[0].strip("[]"))


def test_serve_refuses_a_public_bind_before_opening_anything(capsys):
    from poselive.cli import main
    assert main(["serve", "--source", "synthetic", "--ws", "0.0.0.0:8765"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("poselive: error: refusing to serve WebSocket on 0.0.0.0") and "\n" not in err
    with pytest.raises(PoseliveError, match="--allow-remote"):
        StreamServer(udp="8.8.8.8:9000")


@pytest.mark.parametrize("text", ["127.0.0.1:99999", "127.0.0.1:port", "::1:9000", "[::1"])
def test_bad_addresses_say_how_to_write_them(text):
    with pytest.raises(PoseliveError, match="--udp"):
        parse_endpoint(text, "UDP")


# -------------------------------------------------------------------------------------------- messages
def test_frame_message_is_well_formed_and_attaches_faces():
    r = scene_results(1, people=2, faces=True)[0]
    stray = face_for(r.people[0], 9)
    stray = Face(stray.landmarks + 300, tuple(np.add(stray.bbox, (300, 300, 0, 0))), 0.7, track_id=9)
    ev = [GestureEvent(1, "jump", "start", 0.5, 0)]
    msg = frame_message(7, 1700000000.25, 0.5, W, H, r.people, r.faces + [stray], ev, {1: ("jump",)}, 29.97, 12.5)
    assert check_message(msg) == []
    back = json.loads(encode(msg))
    assert back["schema_version"] == SCHEMA_VERSION and back["frame"] == 7 and back["time"] == 1700000000.25
    p = back["people"][0]
    assert p["track_id"] == 1 and p["gestures"] == ["jump"] and [j["name"] for j in p["joints"]] == list(COCO17.keypoints)
    x, y = r.people[0].keypoints[5, :2]
    j = p["joints"][5]
    assert j["name"] == "left_shoulder" and abs(j["x"] - x) < 0.01 and abs(j["nx"] - (x + 0.5) / W) < 1e-4
    assert 0.0 <= j["nx"] <= 1.0 and 0.0 <= j["ny"] <= 1.0
    assert p["face"]["head_pose"] == {"yaw": 10.0, "pitch": -5.0, "roll": 2.5} and len(p["face"]["landmarks"]) == 68
    assert [f["track_id"] for f in back["faces"]] == [9]  # the face nobody's head is in
    assert back["events"] == [{"type": "gesture", "track_id": 1, "name": "jump", "phase": "start",
                               "time": 1700000000.25}]


def test_large_frames_are_split_per_person_into_whole_messages():
    r = scene_results(1, people=7, faces=True)[0]
    ev = [GestureEvent(3, "t_pose", "start", 0.0, 0)]
    msg = frame_message(0, 1.0, 0.0, W, H, r.people, r.faces, ev)
    parts = datagrams(msg, MAX_DATAGRAM_BYTES)
    assert len(encode(msg)) > MAX_DATAGRAM_BYTES and len(parts) >= 3
    decoded = [json.loads(d) for d in parts]
    assert all(len(d) <= MAX_DATAGRAM_BYTES for d in parts)
    assert all(check_message(m) == [] and m["parts"] == len(parts) for m in decoded)
    assert [m["part"] for m in decoded] == list(range(1, len(parts) + 1))
    assert sorted(p["track_id"] for m in decoded for p in m["people"]) == list(range(1, 8))
    assert all("face" in p for m in decoded for p in m["people"]) and not any(m.get("truncated") for m in decoded)
    assert decoded[0]["events"] == msg["events"] and all(m["events"] == [] for m in decoded[1:])
    # Small enough: one datagram, the message itself.
    small = frame_message(0, 1.0, 0.0, W, H, r.people[:1])
    assert datagrams(small) == [encode(small).encode()]


def test_a_person_too_large_for_a_datagram_loses_the_face_and_says_so():
    r = scene_results(1, people=1, faces=True)[0]
    msg = frame_message(0, 1.0, 0.0, W, H, r.people, r.faces)
    (part,) = datagrams(msg, 2500)
    m = json.loads(part)
    assert len(part) <= 2500 and m["truncated"] is True and "face" not in m["people"][0]
    assert check_message(m) == []


# ------------------------------------------------------------------------------------------------- UDP / OSC
def assert_in_order_and_mostly_complete(frames: list[int], n: int):
    """Frame indices strictly increasing, the last one there (close() sends what is queued), and at most a
    few missing: queues drop the oldest frame when a thread is not scheduled in time on a busy machine."""
    assert frames == sorted(set(frames)) and frames[-1] == n - 1, frames
    assert len(frames) >= 0.8 * n, f"{len(frames)} of {n} frames arrived"


def test_udp_client_gets_frames_in_order():
    rx = udp_receiver()
    port = rx.getsockname()[1]
    with StreamServer(udp=f"127.0.0.1:{port}") as server:
        for r in scene_results(40, people=2):
            server.publish(r)
            time.sleep(0.01)
    msgs = [json.loads(d) for d in drain(rx)]
    rx.close()
    assert_in_order_and_mostly_complete([m["frame"] for m in msgs], 40)
    assert all(check_message(m) == [] and len(m["people"]) == 2 for m in msgs)


def test_osc_bundles_carry_joints_and_gestures():
    pytest.importorskip("pythonosc", reason="the OSC test needs the 'stream' extra (python-osc)")
    from pythonosc.osc_bundle import OscBundle
    rx = udp_receiver()
    port = rx.getsockname()[1]
    r = scene_results(1, people=1, faces=True)[0]
    with StreamServer(osc=f"127.0.0.1:{port}") as server:
        server.publish(r, [GestureEvent(1, "crouch", "start", 0.0, 0)])
    packets = drain(rx)
    rx.close()
    msgs = {}
    for d in packets:
        for m in OscBundle(d):
            msgs[m.address] = m.params
    assert msgs["/poselive/frame"] == [0, W, H, 1]
    assert msgs["/poselive/gesture"] == ["crouch", 1, "start"] and msgs["/poselive/person/1/gesture/crouch"] == [1]
    nx, ny, score = msgs["/poselive/person/1/left_wrist"]
    x, y = r.people[0].keypoints[COCO17.index("left_wrist"), :2]
    assert abs(nx - (x + 0.5) / W) < 1e-3 and abs(ny - (y + 0.5) / H) < 1e-3 and score == pytest.approx(1.0)
    assert msgs["/poselive/person/1/head"] == pytest.approx([10.0, -5.0, 2.5])


# -------------------------------------------------------------------------------------------------- WebSocket
def test_websocket_clients_get_well_formed_messages_in_order():
    with StreamServer(ws="127.0.0.1:0") as server:
        readers = [Reader(server.ws.address) for _ in range(2)]
        assert wait_until(lambda: len(server.ws.clients) == 2)
        for r in scene_results(30):
            server.publish(r)
            time.sleep(0.01)
        assert wait_until(lambda: all(rd.messages and rd.messages[-1]["frame"] == 29 for rd in readers))
    for rd in readers:
        rd.stop()
        assert_in_order_and_mostly_complete([m["frame"] for m in rd.messages], 30)
        assert all(check_message(m) == [] for m in rd.messages)


@pytest.mark.faults
def test_a_web_page_from_another_site_is_refused():
    with StreamServer(ws="127.0.0.1:0") as server:
        with pytest.raises(websockets.exceptions.InvalidStatus, match="403"):
            connect(server.ws.address, origin="https://evil.example", open_timeout=5)
        with connect(server.ws.address, origin="http://localhost:8000", open_timeout=5):
            pass
        with connect(server.ws.address, origin="null", open_timeout=5):  # a page opened from a file
            pass


@pytest.mark.faults
@pytest.mark.parametrize("remote", [False, True])
def test_the_origin_check_holds_in_every_mode_and_allow_origin_adds_one(remote):
    """--allow-remote once turned the Origin check off, so any web page open in the user's browser could read
    the stream; now only --allow-origin lets a site in. (Bound on loopback: tests open no public port.)"""
    with StreamServer(ws="127.0.0.1:0", allow_remote=remote, allow_origins=("https://Trusted.example/",)) as server:
        with pytest.raises(websockets.exceptions.InvalidStatus, match="403"):
            connect(server.ws.address, origin="https://evil.example", open_timeout=5)
        with connect(server.ws.address, origin="https://trusted.example", open_timeout=5):
            pass
    with pytest.raises(PoseliveError, match="--allow-origin 'trusted.example': write an origin as"):
        StreamServer(ws="127.0.0.1:0", allow_origins=("trusted.example",))


@pytest.mark.faults
def test_a_server_reachable_from_other_machines_asks_for_the_token_it_prints():
    remote = StreamServer(ws="0.0.0.0:0", allow_remote=True)  # not started: nothing is bound
    token = remote.ws.token
    assert token and len(token) >= 16 and f"/?token={token}" in remote.describe()
    assert StreamServer(ws="127.0.0.1:0").ws.token is None  # loopback: games connect as before
    from poselive.publish.ws import WebSocketPublisher
    pub = WebSocketPublisher("127.0.0.1", 0, token=token)
    pub.start()
    try:
        for url in (pub.address, f"{pub.address}/?token=wrong", f"{pub.address}/?token="):
            with pytest.raises(websockets.exceptions.InvalidStatus, match="401"):
                connect(url, open_timeout=5)
        with pytest.raises(websockets.exceptions.InvalidStatus, match="403"):  # the token is not an origin pass
            connect(pub.url, origin="https://evil.example", open_timeout=5)
        with connect(pub.url, open_timeout=5):
            pass
    finally:
        pub.close()


@pytest.mark.faults
def test_bad_clients_neither_stop_nor_slow_the_pipeline():
    """While frames are published every 5 ms: a client sends junk text and binary (ignored, it stays), one
    sends a message over the size limit (closed, 1009), one breaks the framing (closed), one vanishes
    mid-stream, and one never reads at all (its queue drops the oldest). A good client gets the newest frames,
    and the server still takes new clients afterwards. (What publish() costs meanwhile is a benchmark:
    `poselive bench --stream`.)"""
    frames = scene_results(301, people=3, faces=True)  # ~10 kB a frame: fills a stalled socket quickly
    with StreamServer(ws="127.0.0.1:0", queue_size=4) as server:
        port = server.ws.port
        good = Reader(server.ws.address)
        junk = Reader(server.ws.address)
        big = Reader(server.ws.address)
        vanishing = raw_websocket(port)
        stalled = raw_websocket(port, rcvbuf=4096)
        broken = raw_websocket(port)
        assert wait_until(lambda: len(server.ws.clients) == 6)
        for i, r in enumerate(frames[:300]):
            server.publish(r)
            if i == 20:
                junk.ws.send("{this is not json")
                junk.ws.send(b"\x00\xff\x10")
                big.ws.send("x" * 200_000)
                broken.sendall(b"\x81\x05hello")  # unmasked: clients must mask their frames
                vanishing.recv(1000)
                vanishing.close()                  # gone without a close frame
            time.sleep(0.005)
        assert wait_until(lambda: good.messages and good.messages[-1]["frame"] == 299)
        assert wait_until(lambda: len(server.ws.clients) == 3)  # good, junk, stalled
        ws_stats = server.ws.stats()
        with connect(server.ws.address, open_timeout=5) as late:  # still serving
            server.publish(frames[300])
            assert json.loads(late.recv(timeout=5))["frame"] == 300
        stalled.close()
        broken.close()
    good.stop(), junk.stop(), big.stop()

    assert len(server.publish_ms) == 301  # every frame was taken
    assert big.closed_code == 1009
    assert ws_stats["ignored_incoming"] >= 2 and ws_stats["dropped"] > 0 and ws_stats["connections"] == 6
    frames_junk = [m["frame"] for m in junk.messages]
    assert frames_junk and frames_junk[-1] == 300 and frames_junk == sorted(set(frames_junk))  # kept, in order
    got = [m["frame"] for m in good.messages]
    # In order and mostly complete (at 200 frames a second on a busy machine it may miss a few; the stalled
    # client, not this one, is where the drops should be).
    assert got == sorted(set(got)) and len(got) >= 0.7 * 300


def test_port_in_use_is_a_one_line_error():
    with StreamServer(ws="127.0.0.1:0") as first:
        with pytest.raises(PoseliveError, match="cannot serve WebSocket on 127.0.0.1:.*another port"):
            StreamServer(ws=f"127.0.0.1:{first.ws.port}").start()


# --------------------------------------------------------------------------------- the serve command itself
class RaisedHandPipeline:
    """Stands in for the network: one tracked person (the synthetic scene's walker) who raises the left hand
    over their head for frames 10-24."""

    def __init__(self):
        self.scene = SyntheticSource(frames=1, people=1, size=(W, H))

    def __call__(self, frame: Frame) -> FrameResult:
        kps = self.scene.keypoints(0)[0].copy()
        sh, wr, el = (COCO17.index(n) for n in ("left_shoulder", "left_wrist", "left_elbow"))
        if 10 <= frame.index < 25:
            kps[el, :2] = kps[sh, :2] - [0, 40]
            kps[wr, :2] = kps[sh, :2] - [0, 80]
        return FrameResult(frame, [Person(kps, (0.0, 0.0, 50.0, 200.0), 0.9, 1)], [], StageTimes())


def test_serve_command_publishes_gesture_events(monkeypatch, capsys):
    import poselive.live
    monkeypatch.setattr(poselive.live, "build_pipeline", lambda *a, **k: RaisedHandPipeline())
    rx = udp_receiver()
    port = rx.getsockname()[1]
    args = argparse.Namespace(source="synthetic:40", udp=f"127.0.0.1:{port}", ws=None, osc=None,
                              allow_remote=False, allow_origin=[], task="body", device="onnx", max_frames=40)
    assert serve_command(args) == 0
    msgs = [json.loads(d) for d in drain(rx)]
    rx.close()
    assert re.search(r"^\d+ frames published", capsys.readouterr().out, re.M)
    frames = [m["frame"] for m in msgs]
    assert frames == sorted(set(frames)) and len(frames) >= 30  # paced in real time; the grabber may drop
    events = [(m["frame"], e["name"], e["phase"]) for m in msgs for e in m["events"]]
    assert [(n, p) for _, n, p in events] == [("hand_raised_left", "start"), ("hand_raised_left", "end")]
    assert 10 <= events[0][0] <= 15 and 25 <= events[1][0] <= 30
    raised = [m["frame"] for m in msgs if m["people"] and m["people"][0]["gestures"] == ["hand_raised_left"]]
    assert raised and raised[0] == events[0][0]


# -------------------------------------------------------------------------------------- real video, real model
@pytest.fixture(scope="module")
def real_stream(shared_data):
    """The first frames of a shared video through the real pipeline (shipped or $POSELIVE_MODELS weights),
    published over UDP and WebSocket at once; what each client received."""
    from poselive.live import build_pipeline
    from poselive.weights import DEFAULT_DETECTOR, resolve_weights
    videos = sorted((shared_data / "videos").glob("*MOT*.mp4")) or sorted((shared_data / "videos").glob("*.mp4"))
    if not videos:
        pytest.skip(f"no videos in {shared_data / 'videos'}")
    try:
        resolve_weights("body-lite"), resolve_weights(DEFAULT_DETECTOR)
    except WeightsError as e:
        pytest.skip(f"body weights missing ({e}); set POSELIVE_MODELS to a folder with body-lite.pt, "
                    f"{DEFAULT_DETECTOR}.pt")
    pipe = build_pipeline("body", "onnx")
    rx = udp_receiver()
    with StreamServer(ws="127.0.0.1:0", udp=f"127.0.0.1:{rx.getsockname()[1]}") as server:
        reader = Reader(server.ws.address)
        assert wait_until(lambda: len(server.ws.clients) == 1)
        n = run_stream(str(videos[0]), server, pipe, max_frames=4, realtime=False)
        assert wait_until(lambda: len(reader.messages) >= n, 10)
    reader.stop()
    packets = [json.loads(d) for d in drain(rx)]
    rx.close()
    return n, reader.messages, packets


def test_real_video_stream_is_well_formed_and_in_order(real_stream):
    n, ws_msgs, udp_msgs = real_stream
    assert n == 4
    assert [m["frame"] for m in ws_msgs] == list(range(4))  # a slow pipeline: nothing is skipped
    assert all(check_message(m) == [] for m in ws_msgs + udp_msgs)
    assert sorted({m["frame"] for m in udp_msgs}) == list(range(4))
    assert all(m["width"] > 0 and m["height"] > 0 for m in ws_msgs)


def test_real_video_track_ids_are_stable(real_stream):
    _, msgs, _ = real_stream
    ids = [{p["track_id"] for p in m["people"]} for m in msgs]
    pairs = [(a, b) for a, b in zip(ids, ids[1:]) if a and b]
    if not pairs:
        pytest.skip(f"the weights found nobody in two consecutive frames (people per frame: "
                    f"{[len(i) for i in ids]}); nothing to check")
    assert any(a & b for a, b in pairs), ids


def test_demo_client_reassembles_split_frames_and_draws():
    """demos/stream_client.py, the reference client: UDP parts of a large frame come back together."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "demos" / "stream_client.py"
    spec = importlib.util.spec_from_file_location("stream_client", path)
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)
    assert client.SCHEMA_VERSION == SCHEMA_VERSION
    frames = scene_results(2, people=6, faces=True)
    asm, whole = client.PartAssembler(), []
    for r in frames:
        parts = [json.loads(d) for d in datagrams(frame_message(r.frame.index, 0.0, 0.0, W, H, r.people, r.faces))]
        assert len(parts) > 1
        for m in parts:
            whole += asm.add(m)
    assert [(m["frame"], len(m["people"]), m["complete"]) for m in whole] == [(0, 6, True), (1, 6, True)]
    drawing = client.ascii_figures(whole[0], 80, 24)
    assert drawing.count("\n") == 23 and "#1" in drawing and "|" in drawing
    assert client.summary(whole[0]).startswith("frame      0  6 people  #1, #2")
