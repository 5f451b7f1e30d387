"""The skeleton stream's cost to the pipeline thread (`poselive bench --stream`): with well-behaved WebSocket
clients in other processes (`bench_stream`), and while clients misbehave (`misbehaving_clients_table`)."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np

from poselive.errors import PoseliveError
from poselive.publish.messages import encode, frame_message
from poselive.publish.server import StreamServer


_BENCH_CLIENT = r"""
import json, sys
from websockets.sync.client import connect
n, last, ordered = 0, -1, True
try:
    with connect(sys.argv[1], max_size=None, compression=None) as ws:
        print("ready", flush=True)
        for m in ws:
            f = json.loads(m)["frame"]
            ordered &= f > last
            last, n = f, n + 1
except Exception:
    pass
print(n, int(ordered), flush=True)
"""


def _bench_results(frames: int, people: int, size=(640, 480)):
    from poselive.pipeline import FrameResult
    from poselive.records import Frame, Person, StageTimes
    from poselive.sources import SyntheticSource
    scene = SyntheticSource(frames=frames, people=min(people, 3), size=size)
    image = np.zeros((size[1], size[0], 3), np.uint8)
    out = []
    for i in range(frames):
        kps = scene.keypoints(i)
        ps = [Person(k, (0.0, 0.0, 100.0, 200.0), 0.9, t + 1) for t, k in enumerate(kps)]
        out.append(FrameResult(Frame(image, i, time.monotonic(), i / 30.0), ps, [], StageTimes()))
    return out


def bench_stream(frames: int = 300, clients: int = 3, people: int = 2, fps: float = 60.0) -> dict:
    """What publishing costs per frame with `clients` WebSocket clients (separate processes) connected:
    synthetic frames of `people` tracked people published at `fps` on loopback. Returns
    publish_call_ms (mean / p99 / max: the pipeline thread's cost), cpu_ms_per_frame (this process's CPU
    time, all publishing threads together, over the same loop without a server) and per-client delivery."""
    results = _bench_results(frames, people)

    def paced(publish) -> float:
        cpu = time.process_time()
        t0 = time.perf_counter()
        for i, r in enumerate(results):
            publish(r)
            delay = t0 + (i + 1) / fps - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        return time.process_time() - cpu

    base_cpu = paced(lambda r: None)
    server = StreamServer(ws="127.0.0.1:0").start()
    procs = []
    try:
        for _ in range(clients):
            p = subprocess.Popen([sys.executable, "-c", _BENCH_CLIENT, server.ws.address], stdout=subprocess.PIPE,
                                 text=True)
            procs.append(p)
        for p in procs:
            if p.stdout.readline().strip() != "ready":
                raise PoseliveError("a benchmark WebSocket client could not connect")
        deadline = time.monotonic() + 10.0
        while len(server.ws.clients) < clients and time.monotonic() < deadline:
            time.sleep(0.01)
        msg_bytes = len(encode(frame_message(0, 0.0, 0.0, 640, 480, results[0].people)))
        cpu = paced(server.publish)
    finally:
        server.close()
        received = []
        for p in procs:
            try:
                out, _ = p.communicate(timeout=10)
                n, ordered = (int(v) for v in out.split()[-2:])
            except (subprocess.TimeoutExpired, ValueError):
                p.kill()
                n, ordered = 0, 0
            received.append({"messages": n, "in_order": bool(ordered)})
    s = server.stats()
    return {"frames": frames, "clients": clients, "people": people, "fps": fps, "message_bytes": msg_bytes,
            "publish_call_ms": s["publish_ms"], "hub_encode_ms": s["encode_ms"],
            "cpu_ms_per_frame": max(0.0, (cpu - base_cpu) * 1000.0 / frames), "received": received,
            "dropped": server.ws.dropped}


def bench_table(b: dict) -> str:
    """The lines `poselive bench` prints for bench_stream's result."""
    pc, enc = b["publish_call_ms"], b["hub_encode_ms"]
    got = ", ".join(f"{r['messages']}" + ("" if r["in_order"] else " (out of order!)") for r in b["received"])
    return "\n".join([
        f"stream: {b['frames']} frames of {b['people']} people ({b['message_bytes']} B JSON) at {b['fps']:g} fps "
        f"to {b['clients']} WebSocket clients",
        f"  publish() on the pipeline thread   median {pc['median']:.4f} ms   mean {pc['mean']:.4f} ms   "
        f"p99 {pc['p99']:.4f} ms   max {pc['max']:.3f} ms",
        f"  build + encode (hub thread)        median {enc['median']:.4f} ms   mean {enc['mean']:.4f} ms   "
        f"p99 {enc['p99']:.4f} ms",
        f"  CPU of all publishing threads      {b['cpu_ms_per_frame']:.3f} ms per frame",
        f"  messages received per client       {got} (dropped {b['dropped']})",
    ])


def misbehaving_clients_table(frames: int = 300, interval_s: float = 0.005) -> str:
    """publish() while frames go out every `interval_s` to one client that reads and one that never does (its
    queue fills and drops the oldest), then one that sends a message over the size limit: the cost of
    publish() on the pipeline thread and how long the publishing loop took against its paced length. The
    stream promises that no client holds up the pipeline."""
    from websockets.sync.client import connect

    results = _bench_results(frames, 3)
    got: list[int] = []
    with StreamServer(ws="127.0.0.1:0", queue_size=4) as server:
        good = connect(server.ws.address, open_timeout=5)
        stalled = connect(server.ws.address, open_timeout=5, max_queue=1)  # never reads

        def read() -> None:
            try:
                for m in good:
                    got.append(1)
            except Exception:  # noqa: BLE001 (closed at the end)
                pass
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + 10.0
        while len(server.ws.clients) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = time.perf_counter()
        for i, r in enumerate(results):
            server.publish(r)
            if i == 20:
                try:
                    stalled.send("x" * 200_000)  # over the 4 kB limit: the server closes this one
                except Exception:  # noqa: BLE001
                    pass
            time.sleep(interval_s)
        loop_s = time.perf_counter() - t0
        time.sleep(0.5)
        good.close()
        stalled.close()
    pub = np.asarray(server.publish_ms)
    paced_s = frames * interval_s
    rows = [["publish() median ms", round(float(np.median(pub)), 4), "< 0.5"],
            ["publish() mean ms", round(float(pub.mean()), 4), "< 1.0"],
            ["publish() max ms", round(float(pub.max()), 3), ""],
            ["publishing loop s", round(loop_s, 2), f"< {paced_s + 3.0:.1f} ({frames} x {interval_s * 1000:g} ms "
                                                    f"paced = {paced_s:.1f} s)"],
            ["messages the reading client got", len(got), f"of {frames}"]]
    from poselive.tables import format_table
    return format_table(["while clients misbehave", "value", "bar"], rows,
                        f"Stream: {frames} frames of 3 people every {interval_s * 1000:g} ms, one client reading, "
                        f"one never reading, then sending 200 kB")
