"""`poselive serve`: run the live pipeline and publish every frame (skeletons, faces, gesture events) over
WebSocket, UDP and OSC, for game engines and creative tools on this machine (or, with --allow-remote, others).

    pipeline thread ──publish()──► hub thread (builds + encodes the message once) ──► WebSocket loop thread
                                                                                    ├─► UDP sender thread
                                                                                    └─► OSC sender thread
Every arrow is a bounded queue that drops the oldest message when the side after it falls behind, so
publishing never makes the pipeline wait: `publish()` only appends to a deque.

Addresses are loopback only (127.0.0.0/8, ::1, localhost) unless allow_remote: a pose stream shows where a
person is and what they do, which should not leave the machine by accident. A WebSocket server on a
non-loopback address asks every client for a token (printed at start), and in every mode web pages from other
sites are refused unless allowed by origin (publish/ws.py).
"""
from __future__ import annotations

import ipaddress
import logging
import re
import secrets
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from poselive.errors import InputError, PoseliveError
from poselive.gestures import GestureDetector, GestureEvent
from poselive.publish.messages import MAX_DATAGRAM_BYTES, Encoded, encode, frame_message
from poselive.publish.osc import osc_publisher
from poselive.publish.udp import UdpPublisher, json_datagrams
from poselive.publish.ws import WebSocketPublisher
from poselive.records import Face, Person

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"WebSocket": 8765, "UDP": 9750, "OSC": 9000}


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_endpoint(text: str, kind: str, allow_remote: bool = False) -> Endpoint:
    """"HOST:PORT", "[IPv6]:PORT", ":PORT" or "PORT" (host 127.0.0.1), or "HOST" (the kind's default port)
    -> Endpoint. kind: "WebSocket", "UDP" or "OSC" (for messages). Raises PoseliveError for a non-loopback
    host unless allow_remote."""
    flag = {"WebSocket": "--ws", "UDP": "--udp", "OSC": "--osc"}.get(kind, kind)
    s = text.strip()
    host, port_text = s, ""
    if s.startswith("["):
        host, sep, rest = s[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise PoseliveError(f"{flag} {text!r}: write an IPv6 address as [ADDRESS]:PORT, e.g. [::1]:{DEFAULT_PORTS[kind]}")
        port_text = rest[1:]
    elif s.count(":") == 1:
        host, port_text = s.split(":")
    elif s.count(":") > 1:
        raise PoseliveError(f"{flag} {text!r}: write an IPv6 address in brackets, e.g. [::1]:{DEFAULT_PORTS[kind]}")
    elif s.isdigit():
        host, port_text = "", s
    host = host or "127.0.0.1"
    try:
        port = int(port_text) if port_text else DEFAULT_PORTS[kind]
    except ValueError:
        port = -1
    if not 0 <= port <= 65535 or (port == 0 and kind != "WebSocket"):
        raise PoseliveError(f"{flag} {text!r}: the port must be a number from 1 to 65535")
    if not allow_remote and not is_loopback(host):
        verb = "serve WebSocket on" if kind == "WebSocket" else f"send {kind} to"
        raise PoseliveError(f"refusing to {verb} {host}: it is not a loopback address (127.0.0.1, ::1, "
                            f"localhost); add --allow-remote to publish to other machines")
    return Endpoint(host, port)


def parse_origin(text: str) -> str:
    """A web page origin for --allow-origin: "scheme://host[:port]", lower-cased, without a trailing slash."""
    origin = text.strip().rstrip("/").lower()
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*://[^/?#\s]+", origin):
        raise InputError(f"--allow-origin {text!r}: write an origin as scheme://host[:port], e.g. https://example.com")
    return origin


def is_loopback(host: str) -> bool:
    """True for localhost and loopback IP addresses; no name is looked up."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _target_address(host: str, kind: str) -> str:
    """An IP address to send datagrams to: localhost is 127.0.0.1; names (allowed with --allow-remote) are
    looked up once, here."""
    if host.lower() == "localhost":
        return "127.0.0.1"
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        try:
            return socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)[0][4][0]
        except OSError as e:
            raise PoseliveError(f"cannot send {kind} to {host}: {e.strerror or e}; check the host name")


@dataclass(frozen=True, eq=False)  # holds records with arrays: compare by identity
class _Queued:
    """One frame waiting for the hub: what `frame_message` needs, taken on the pipeline thread. time_s: Unix
    seconds of capture."""
    index: int
    time_s: float
    video_time: float
    width: int
    height: int
    people: list[Person]
    faces: list[Face]
    events: list[GestureEvent]
    active: dict[int, tuple[str, ...]] | None
    fps: float | None
    latency_ms: float | None


class StreamServer:
    """Publishes frames to the configured outputs (any of udp, ws, osc: "HOST:PORT" strings, see
    parse_endpoint). Nothing is bound or sent before `start()` (or `with`); `close()` sends what is queued
    and stops. `publish()` may be called from one thread (the pipeline's) and never waits.

        with StreamServer(ws="127.0.0.1:8765") as server:
            for live in poselive.stream("0"):
                server.publish(live.result)
    """

    def __init__(self, udp: str | None = None, ws: str | None = None, osc: str | None = None, *,
                 allow_remote: bool = False, allow_origins: tuple[str, ...] = (),
                 max_datagram_bytes: int = MAX_DATAGRAM_BYTES, queue_size: int = 4):
        """allow_origins: web page origins ("https://host[:port]") that may connect besides local pages."""
        if not (udp or ws or osc):
            raise PoseliveError("nowhere to publish: give --ws, --udp or --osc HOST:PORT")
        self.ws: WebSocketPublisher | None = None
        self.udp: UdpPublisher | None = None
        self.osc: UdpPublisher | None = None
        # Every address is checked before anything is opened, so a refused one leaves nothing half started.
        eps = {kind: parse_endpoint(text, kind, allow_remote) for kind, text in
               (("WebSocket", ws), ("UDP", udp), ("OSC", osc)) if text}
        origins = tuple(parse_origin(o) for o in allow_origins)
        if "WebSocket" in eps:
            e = eps["WebSocket"]
            # Reachable from other machines: only a client that was shown the token gets the stream.
            token = None if is_loopback(e.host) else secrets.token_urlsafe(16)
            self.ws = WebSocketPublisher(e.host, e.port, queue_size, allowed_origins=origins, token=token)
        if "UDP" in eps:
            e = eps["UDP"]
            self.udp = UdpPublisher(_target_address(e.host, "UDP"), e.port, json_datagrams(max_datagram_bytes),
                                    queue_size)
        if "OSC" in eps:
            e = eps["OSC"]
            self.osc = osc_publisher(_target_address(e.host, "OSC"), e.port, queue_size)
        self.publishers = [p for p in (self.ws, self.udp, self.osc) if p is not None]
        # Frame.capture_time is time.monotonic(); messages carry Unix time.
        self._clock_offset = time.time() - time.monotonic()
        self._inbox: deque[_Queued] = deque(maxlen=queue_size)
        self._cond = threading.Condition()
        self._closing = False
        self._started = False
        self._hub = threading.Thread(target=self._run, name="stream hub", daemon=True)
        self.published = 0          # publish() calls
        self.skipped = 0            # frames the hub was too busy to encode (replaced by a newer one)
        # The last 10 000 frames: time each publish() call took on the caller's thread, and the time the hub
        # spent building and encoding each message (ms).
        self.publish_ms: deque[float] = deque(maxlen=10_000)
        self.encode_ms: deque[float] = deque(maxlen=10_000)

    def describe(self) -> str:
        return ", ".join(p.url if p is self.ws else p.address for p in self.publishers)

    def start(self) -> StreamServer:
        started = []
        try:
            for p in self.publishers:
                p.start()
                started.append(p)
        except BaseException:
            for p in started:
                p.close()
            raise
        self._hub.start()
        self._started = True
        return self

    def publish(self, result, events: list[GestureEvent] = (), active: dict[int, tuple[str, ...]] | None = None,
                *, fps: float | None = None, latency_ms: float | None = None) -> None:
        """Queue one FrameResult (with this frame's gesture events and the active gestures per track id) for
        every output; returns at once. When the hub is behind, the oldest unencoded frame is skipped."""
        t = time.perf_counter()
        f = result.frame
        h, w = f.image.shape[:2]
        item = _Queued(f.index, f.capture_time + self._clock_offset, f.video_time, w, h, list(result.people),
                       list(result.faces), list(events), active, fps, latency_ms)
        with self._cond:
            if len(self._inbox) == self._inbox.maxlen:
                self.skipped += 1
            self._inbox.append(item)
            self._cond.notify()
        self.published += 1
        self.publish_ms.append((time.perf_counter() - t) * 1000.0)

    def close(self) -> None:
        if not self._started:
            return
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._hub.join(5.0)
        for p in self.publishers:
            p.close()
        self._started = False

    def stats(self) -> dict:
        d = {"published": self.published, "skipped": self.skipped}
        for name, ms in (("publish_ms", self.publish_ms), ("encode_ms", self.encode_ms)):
            if ms:
                a = np.asarray(ms)
                d[name] = {"mean": float(a.mean()), "median": float(np.median(a)), "p99": float(np.percentile(a, 99)),
                           "max": float(a.max())}
        for p in self.publishers:
            d[p.address] = p.stats()
        return d

    def __enter__(self) -> StreamServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._inbox and not self._closing:
                    self._cond.wait()
                if not self._inbox:
                    return
                item = self._inbox.popleft()
            t = time.perf_counter()
            try:
                msg = frame_message(item.index, item.time_s, item.video_time, item.width, item.height, item.people,
                                    item.faces, item.events, item.active, item.fps, item.latency_ms)
                encoded = Encoded(msg, encode(msg), item.index)
            except Exception:  # a bad frame must not end the stream: log it, go on with the next
                log.exception("cannot encode frame %d for the stream", item.index)
                continue
            for p in self.publishers:
                p.send(encoded)
            self.encode_ms.append((time.perf_counter() - t) * 1000.0)


class StreamSink:
    """The stream as a live-loop sink (poselive.live.Sink): each result's gestures read (GestureDetector), then
    the frame, its gesture events and the active gestures published."""

    def __init__(self, server: StreamServer, gestures: GestureDetector | None = None):
        self.server = server
        self.gestures = gestures or GestureDetector()
        self.published = 0

    def on_result(self, live) -> None:
        r = live.result
        events = self.gestures.update(r.people, r.frame.index, r.frame.video_time, r.frame.image.shape[0])
        self.server.publish(r, events, self.gestures.active_by_track(), fps=live.fps, latency_ms=live.latency_ms)
        self.published += 1

    def close(self) -> None:
        """The server is closed by whoever started it."""


def run_stream(source, server: StreamServer, pipeline=None, *, tasks: str = "body", device: str = "auto",
               gestures: GestureDetector | None = None, max_frames: int | None = None,
               realtime: bool = True) -> int:
    """The live loop of `poselive serve`: the pipeline over `source` (anything poselive.live.stream takes),
    gestures per track, every frame published. realtime: pace files at their frame rate, as a camera would
    deliver them. Returns the number of frames published."""
    from poselive.live import build_pipeline, run_live
    return run_live(source, pipeline or build_pipeline(tasks, device), [StreamSink(server, gestures)],
                    max_frames=max_frames, realtime=realtime)


def serve_command(args) -> int:
    """`poselive serve`: without any of --ws, --udp, --osc, serves WebSocket on 127.0.0.1:8765."""
    from poselive.live import build_pipeline, run_live
    from poselive.sources import open_source
    ws = args.ws
    if not (args.udp or args.ws or args.osc):
        ws = f"127.0.0.1:{DEFAULT_PORTS['WebSocket']}"
    server = StreamServer(udp=args.udp, ws=ws, osc=args.osc, allow_remote=args.allow_remote,
                          allow_origins=tuple(args.allow_origin))
    # The source is opened before the models load, so a missing file is reported at once.
    source = open_source(args.source, realtime=True)
    try:
        pipe = build_pipeline(args.task, args.device)
    except BaseException:
        source.close()
        raise
    sink = StreamSink(server)
    with source, server:
        print(f"publishing to {server.describe()} (Ctrl-C to stop)", flush=True)
        if server.ws is not None and server.ws.token:
            print("clients on other machines connect with the token above; web pages from other sites also "
                  "need --allow-origin", flush=True)
        try:
            run_live(source, pipe, [sink], max_frames=getattr(args, "max_frames", None), realtime=True)
        except KeyboardInterrupt:
            pass
    n = sink.published
    ms = server.stats().get("publish_ms", {})
    # The median: a single call can include a wait for the GIL while another thread runs (capture, hub).
    print(f"{n} frames published to {server.describe()}; publishing took {ms.get('median', 0.0):.3f} ms per "
          f"frame (median) on the pipeline thread")
    return 0
