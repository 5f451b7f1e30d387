"""A client of `poselive serve`: receives the skeleton stream over WebSocket or UDP and draws each person as a
stick figure in the terminal (or, with --lines, prints one line per frame; --json prints the messages).

    poselive serve --source 0 --ws 127.0.0.1:8765 --udp 127.0.0.1:9750      # in one terminal
    python demos/stream_client.py --ws ws://127.0.0.1:8765                   # in another
    python demos/stream_client.py --udp 9750

Standalone on purpose (standard library, plus `websockets` for --ws): it is the reference for writing a
client in another language. It shows the two things a client must know: joints come by name with
normalised nx, ny (0..1 across the image), and a UDP frame may arrive split into parts ("part", "parts"),
each a complete message holding some of the people. For a window, open demos/stream_client.html in a
browser instead.
"""
from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import time

SCHEMA_VERSION = 1
BONES = [("left_ankle", "left_knee"), ("left_knee", "left_hip"), ("right_ankle", "right_knee"),
         ("right_knee", "right_hip"), ("left_hip", "right_hip"), ("left_shoulder", "left_hip"),
         ("right_shoulder", "right_hip"), ("left_shoulder", "right_shoulder"), ("left_shoulder", "left_elbow"),
         ("right_shoulder", "right_elbow"), ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"),
         ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"), ("right_eye", "right_ear")]
MIN_SCORE = 0.3


# ---------------------------------------------------------------------------------------------- receiving
def websocket_frames(url: str):
    """Frame messages from a WebSocket server, as dicts."""
    from websockets.exceptions import ConnectionClosedError
    from websockets.sync.client import connect
    with connect(url, max_size=None) as ws:
        try:
            for text in ws:
                yield json.loads(text)
        except ConnectionClosedError as e:
            print(f"stream_client: the server went away ({e})", file=sys.stderr)


class PartAssembler:
    """Puts split UDP frames back together: add() returns the whole frame once all its parts are in, or when
    a newer frame's datagram shows that the rest of an older one was lost (then with what did arrive)."""

    def __init__(self):
        self.frame = None
        self.parts: dict[int, dict] = {}

    def add(self, msg: dict) -> list[dict]:
        if "parts" not in msg:
            return self._flush() + [msg]
        out = self._flush() if msg["frame"] != self.frame else []
        self.frame = msg["frame"]
        self.parts[msg["part"]] = msg
        if len(self.parts) == msg["parts"]:
            out += self._flush()
        return out

    def _flush(self) -> list[dict]:
        if not self.parts:
            return []
        parts = [self.parts[k] for k in sorted(self.parts)]
        whole = {k: v for k, v in parts[0].items() if k not in ("part", "parts")}
        whole["people"] = [p for m in parts for p in m["people"]]
        whole["faces"] = [f for m in parts for f in m["faces"]]
        whole["complete"] = len(parts) == parts[0]["parts"]
        self.parts, self.frame = {}, None
        return [whole]


def udp_frames(port: int, host: str = "127.0.0.1"):
    """Frame messages from JSON datagrams sent to host:port."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    assembler = PartAssembler()
    while True:
        data, _ = sock.recvfrom(65536)
        try:
            msg = json.loads(data)
        except ValueError:
            continue
        yield from assembler.add(msg)


# ------------------------------------------------------------------------------------------------ drawing
def _line(grid, a, b, ch):
    (x0, y0), (x1, y1) = a, b
    n = max(round(abs(x1 - x0)), round(abs(y1 - y0)), 1)
    for i in range(n + 1):
        x, y = round(x0 + (x1 - x0) * i / n), round(y0 + (y1 - y0) * i / n)
        if 0 <= y < len(grid) and 0 <= x < len(grid[0]):
            grid[y][x] = ch


def ascii_figures(msg: dict, cols: int = 80, rows: int = 24) -> str:
    """The frame's people as stick figures on a cols x rows character grid."""
    grid = [[" "] * cols for _ in range(rows)]
    for p in msg["people"]:
        pts = {j["name"]: (j["nx"] * (cols - 1), j["ny"] * (rows - 1)) for j in p["joints"] if j["score"] >= MIN_SCORE}
        for a, b in BONES:
            if a in pts and b in pts:
                (x0, y0), (x1, y1) = pts[a], pts[b]
                dx, dy = x1 - x0, (y1 - y0) * 2  # a character cell is about twice as tall as wide
                ch = "|" if abs(dx) < 0.4 * abs(dy) else "-" if abs(dy) < 0.4 * abs(dx) else "\\" if dx * dy > 0 else "/"
                _line(grid, pts[a], pts[b], ch)
        for name, (x, y) in pts.items():
            if 0 <= round(y) < rows and 0 <= round(x) < cols:
                grid[round(y)][round(x)] = "O" if name == "nose" else "o"
        if "nose" in pts:
            label = f"#{p['track_id']}"
            x, y = round(pts["nose"][0]), max(round(pts["nose"][1]) - 2, 0)
            for i, c in enumerate(label):
                if 0 <= x + i < cols:
                    grid[y][x + i] = c
    return "\n".join("".join(r) for r in grid)


def summary(msg: dict) -> str:
    people = ", ".join(f"#{p['track_id']}" + (f" [{' '.join(p['gestures'])}]" if p["gestures"] else "")
                       for p in msg["people"])
    events = " ".join(f"{e['name']}:{e['phase']}(#{e['track_id']})" for e in msg["events"])
    return (f"frame {msg['frame']:6d}  {len(msg['people'])} people  {people}"
            + (f"  events: {events}" if events else "") + ("" if msg.get("complete", True) else "  (parts lost)"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--ws", help="WebSocket URL, e.g. ws://127.0.0.1:8765")
    src.add_argument("--udp", type=int, help="UDP port to listen on (127.0.0.1)")
    show = ap.add_mutually_exclusive_group()
    show.add_argument("--lines", action="store_true", help="one line per frame instead of a drawing")
    show.add_argument("--json", action="store_true", help="print each message as JSON")
    ap.add_argument("--frames", type=int, help="stop after this many frames")
    args = ap.parse_args(argv)

    frames = websocket_frames(args.ws) if args.ws else udp_frames(args.udp)
    draw = not (args.lines or args.json) and sys.stdout.isatty()
    n, t_last = 0, 0.0
    try:
        for msg in frames:
            if msg.get("schema_version") != SCHEMA_VERSION:
                print(f"skipping a message of schema version {msg.get('schema_version')}", file=sys.stderr)
                continue
            n += 1
            if args.json:
                print(json.dumps(msg), flush=True)
            elif draw:
                if time.monotonic() - t_last > 1 / 30 or msg["events"]:  # the terminal is the slow part
                    cols, rows = shutil.get_terminal_size((80, 24))
                    print("\x1b[H\x1b[2J" + ascii_figures(msg, cols, rows - 2) + "\n" + summary(msg)[:cols],
                          end="", flush=True)
                    t_last = time.monotonic()
            else:
                print(summary(msg), flush=True)
            if args.frames and n >= args.frames:
                break
    except KeyboardInterrupt:
        pass
    except OSError as e:
        print(f"stream_client: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
