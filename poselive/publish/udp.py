"""UDP publisher: sends every frame message as datagrams to one target (host:port) from its own thread.

By default the datagrams are the message's JSON (split per person when large: see messages.datagrams); the
OSC publisher is this same sender with OSC datagrams instead. The queue between the pipeline and the socket
holds `queue_size` messages and drops the oldest when the sender falls behind; the socket never blocks (a full
send buffer drops the datagram), and a target nobody listens on is no error: UDP does not know.
"""
from __future__ import annotations

import logging
import socket
import threading
from collections import deque
from typing import Callable

from poselive.publish.messages import MAX_DATAGRAM_BYTES, Encoded, datagrams

log = logging.getLogger(__name__)


def json_datagrams(max_bytes: int = MAX_DATAGRAM_BYTES) -> Callable[[Encoded], list[bytes]]:
    return lambda m: datagrams(m.data, max_bytes, m.text)


class UdpPublisher:
    """Sends to (host, port); host is an IP address (IPv4 or IPv6). `send()` returns at once."""

    def __init__(self, host: str, port: int, to_datagrams: Callable[[Encoded], list[bytes]] | None = None,
                 queue_size: int = 4, kind: str = "UDP"):
        self.host, self.port, self.kind = host, port, kind
        self.to_datagrams = to_datagrams or json_datagrams()
        self.sent = 0          # datagrams sent
        self.dropped = 0       # messages dropped from the queue (the sender fell behind)
        self.failed = 0        # datagrams the socket refused (buffer full, network down)
        self._queue: deque[Encoded] = deque(maxlen=queue_size)
        self._cond = threading.Condition()
        self._closing = False
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name=f"{kind} to {host}:{port}", daemon=True)

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.kind.lower()}://{host}:{self.port}"

    def start(self) -> None:
        self._sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._thread.start()

    def send(self, message: Encoded) -> None:
        with self._cond:
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1
            self._queue.append(message)
            self._cond.notify()

    def close(self, timeout_s: float = 2.0) -> None:
        """Sends what is queued, then stops."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._sock is not None:
            self._sock.close()

    def stats(self) -> dict:
        return {"sent": self.sent, "dropped": self.dropped, "failed": self.failed}

    def _run(self) -> None:
        warned = False
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                message = self._queue.popleft()
            try:
                packets = self.to_datagrams(message)
            except Exception:  # a bug here must not take the stream down: log it, skip the frame
                log.exception("%s: cannot encode frame %d", self.kind, message.frame)
                continue
            for data in packets:
                try:
                    self._sock.sendto(data, (self.host, self.port))
                    self.sent += 1
                except OSError as e:
                    self.failed += 1
                    if not warned:
                        log.warning("%s to %s:%d: %s (further failures are counted, not logged)", self.kind,
                                    self.host, self.port, e)
                        warned = True
