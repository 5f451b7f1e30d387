"""WebSocket publisher: a server (the `websockets` package) on its own thread and asyncio loop that sends
every frame message, as a JSON text message, to every connected client.

Each client has its own bounded queue (`queue_size` messages) and its own writer task: a client that reads
slowly only falls behind itself (its oldest queued messages are dropped, and counted), never the pipeline or
the other clients. The stream is one-way: what clients send is read and ignored; a message over
`max_incoming_bytes` closes that client's connection (code 1009), broken framing closes it too (1002), and
neither touches the server. A client that stops answering pings is dropped after `ping_timeout_s`.

Browsers: a page may connect when it has no Origin (non-browser clients: game engines, scripts), a "null"
origin (a page opened from a file), a localhost origin, or one of `allowed_origins` (--allow-origin); other web
sites are refused (403), in every mode, so a site open in the user's browser cannot read their skeleton.
With a `token` (set for a server reachable from other machines), a client must also ask for
ws://HOST:PORT/?token=TOKEN; one without it is refused (401).
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import re
import threading
import time
from collections import deque
from urllib.parse import parse_qs, urlsplit

from poselive.errors import PoseliveError
from poselive.publish.messages import Encoded

log = logging.getLogger(__name__)

# The library's own per-connection INFO lines would repeat ours; its warnings and errors still show.
_library_log = logging.getLogger(__name__ + ".websockets")
_library_log.setLevel(logging.WARNING)

_LOCAL_ORIGIN = re.compile(r"^https?://(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$", re.IGNORECASE)


class _Client:
    def __init__(self, ws, queue_size: int):
        self.ws = ws
        self.queue: deque[str] = deque(maxlen=queue_size)
        self.ready = asyncio.Event()
        self.dropped = 0
        self.sent = 0
        self.name = "%s:%s" % tuple(ws.remote_address[:2]) if ws.remote_address else "?"


class WebSocketPublisher:
    """Serves ws://host:port. `start()` binds (PoseliveError when it cannot), `send()` hands it a message
    from any thread without waiting, `close()` lets queued messages go out (up to `drain_s`) and stops."""

    def __init__(self, host: str, port: int, queue_size: int = 4, max_incoming_bytes: int = 4096,
                 ping_interval_s: float = 5.0, ping_timeout_s: float = 5.0, allowed_origins: tuple[str, ...] = (),
                 token: str | None = None, drain_s: float = 0.5):
        self.host, self.port = host, port
        self.queue_size = queue_size
        self.max_incoming_bytes = max_incoming_bytes
        self.ping_interval_s, self.ping_timeout_s = ping_interval_s, ping_timeout_s
        self.allowed_origins = {o.lower() for o in allowed_origins}
        self.token = token
        self.drain_s = drain_s
        self.clients: set[_Client] = set()
        self.connections = 0        # clients ever connected
        self.ignored_incoming = 0   # messages clients sent (the stream is one-way)
        self.dropped = 0            # messages dropped from the queues of clients that fell behind
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._bound = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"websocket {host}:{port}", daemon=True)

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    @property
    def url(self) -> str:
        """What a client connects to: the address, with the token when one is needed."""
        return self.address + (f"/?token={self.token}" if self.token else "")

    def start(self, timeout_s: float = 10.0) -> None:
        try:
            import websockets  # noqa: F401
        except ImportError:
            raise PoseliveError("WebSocket output needs the 'websockets' package: pip install 'poselive[stream]'")
        self._thread.start()
        if not self._bound.wait(timeout_s):
            raise PoseliveError(f"the WebSocket server on {self.host}:{self.port} did not start within {timeout_s:g} s")
        if self._error is not None:
            e = self._error
            reason = getattr(e, "strerror", None) or str(e)
            raise PoseliveError(f"cannot serve WebSocket on {self.host}:{self.port}: {reason}; choose another "
                                f"port with --ws HOST:PORT")

    def send(self, message: Encoded) -> None:
        """Queue a message for every client; returns at once (never waits on the network)."""
        loop = self._loop
        if loop is None or not self.clients:
            return
        try:
            loop.call_soon_threadsafe(self._fan_out, message.text)
        except RuntimeError:  # the loop has just closed
            pass

    def close(self, timeout_s: float = 5.0) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass
        if self._thread.is_alive():
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("the WebSocket server on %s did not stop within %g s", self.address, timeout_s)

    def stats(self) -> dict:
        return {"clients": len(self.clients), "connections": self.connections, "dropped": self.dropped,
                "ignored_incoming": self.ignored_incoming}

    # ---------------------------------------------------------------------------------- the loop's side
    def _fan_out(self, text: str) -> None:
        for c in self.clients:
            if len(c.queue) == c.queue.maxlen:
                c.dropped += 1
                self.dropped += 1
            c.queue.append(text)
            c.ready.set()

    async def _write(self, c: _Client) -> None:
        from websockets.exceptions import ConnectionClosed
        try:
            while True:
                await c.ready.wait()
                c.ready.clear()
                while c.queue:
                    # Waits while this client's socket is full; meanwhile its queue drops the oldest.
                    await c.ws.send(c.queue.popleft())
                    c.sent += 1
        except ConnectionClosed:
            pass

    async def _handle(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed
        c = _Client(ws, self.queue_size)
        self.clients.add(c)
        self.connections += 1
        log.info("WebSocket client %s connected (%d now)", c.name, len(self.clients))
        writer = asyncio.create_task(self._write(c))
        reason = "it closed the connection"
        try:
            async for incoming in ws:
                self.ignored_incoming += 1
                log.debug("ignoring a %d-byte message from WebSocket client %s (the stream is one-way)",
                          len(incoming), c.name)
        except ConnectionClosed as e:
            reason = str(e)  # e.g. "sent 1009 (message too big) ...", "sent 1002 (protocol error) ..."
        finally:
            self.clients.discard(c)
            writer.cancel()
            log.info("WebSocket client %s gone after %d messages (%d dropped): %s; %d clients now", c.name,
                     c.sent, c.dropped, reason, len(self.clients))

    def _check_request(self, connection, request):
        from http import HTTPStatus
        if self.token is not None:
            given = parse_qs(urlsplit(request.path).query).get("token", [""])[0]
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                log.warning("refused a WebSocket connection without the right token")
                return connection.respond(HTTPStatus.UNAUTHORIZED, "poselive: connect to the URL with "
                                                                   "?token= that `poselive serve` printed\n")
        origin = request.headers.get("Origin")
        if origin is None or origin == "null" or _LOCAL_ORIGIN.match(origin) or origin.lower() in self.allowed_origins:
            return None
        log.warning("refused a WebSocket connection from the web page at %s (not a local origin; "
                    "--allow-origin %s lets it in)", origin, origin)
        return connection.respond(HTTPStatus.FORBIDDEN, "poselive serves local pages only\n")

    async def _main(self) -> None:
        from websockets.asyncio.server import serve
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            server = await serve(self._handle, self.host, self.port, max_size=self.max_incoming_bytes,
                                 # Compressing each message once per client costs more than loopback or a LAN
                                 # saves; the queue, not the library's buffer, holds the backlog.
                                 compression=None, max_queue=4, write_limit=64 * 1024,
                                 ping_interval=self.ping_interval_s, ping_timeout=self.ping_timeout_s,
                                 close_timeout=1.0, open_timeout=5.0, process_request=self._check_request,
                                 logger=_library_log)
        except OSError as e:
            self._error = e
            self._bound.set()
            return
        if self.port == 0:
            self.port = server.sockets[0].getsockname()[1]
        self._bound.set()
        await self._stop.wait()
        deadline = time.monotonic() + self.drain_s
        while any(c.queue for c in self.clients) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        server.close()
        await server.wait_closed()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # reported by start() when it happens while binding
            if not self._bound.is_set():
                self._error = e
                self._bound.set()
            else:
                log.exception("the WebSocket server stopped: %s", e)
        finally:
            self._loop = None
