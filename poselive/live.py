"""The live loop, once: source -> latest-frame grabber -> pipeline -> (overlay) -> sinks.

`poselive run`, `poselive serve`, the window and `poselive.stream()` all go through here. What happens to a
result is a sink's business: anything with `on_result(live)` and `close()` (the JSONL and MP4 writers in
outputs.py, the stream publisher with its gestures in publish/, the window's recording in gui/).

    run_live("clip.mp4", build_pipeline("body"), [JsonlSink("out.jsonl")])
    for live in stream("0"):                 # the in-process API
        for person in live.result.people: ...
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Iterator, Protocol

import numpy as np

from poselive.errors import PoseliveError
from poselive.pipeline import FrameResult, Pipeline, PipelineConfig
from poselive.records import StageTimes
from poselive.timing import FpsMeter
from poselive.weights import DEFAULT_DETECTOR

log = logging.getLogger(__name__)


def build_pipeline(tasks: str = "body", device: str = "auto", smoothing: bool = True, heatmaps: bool = False,
                   body_model: str = "body-lite", detector: str = DEFAULT_DETECTOR, threads: int | None = None
                   ) -> Pipeline:
    """A Pipeline for a comma list of tasks ("body", "face"); detector: the person detector's weights; threads:
    ONNX Runtime threads per network (None: one per core; 1 where processes share the cores, as Ray workers do)."""
    from poselive.estimator import PoseEstimator
    names = {t.strip() for t in tasks.split(",") if t.strip()}
    unknown = names - {"body", "face"}
    if unknown:
        raise PoseliveError(f"unknown task {', '.join(sorted(unknown))}; use body, face or body,face")
    face_stage = None
    if "face" in names:
        from poselive.face_estimator import FaceStage
        face_stage = FaceStage(device=device)
    return Pipeline(PoseEstimator(body_model, device=device, detector=detector, threads=threads),
                    PipelineConfig(smoothing=smoothing, keep_heatmaps=heatmaps), face_stage=face_stage,
                    bodies="body" in names)


@dataclass(frozen=True)
class Overlay:
    """What the drawn frame shows besides skeletons and faces: the network's heatmaps, the timing panel."""
    heatmaps: bool = False
    hud: bool = True


@dataclass(frozen=True, eq=False)  # holds an image: compare by identity
class LiveResult:
    """A FrameResult plus what the live loop knows: frames dropped by the grabber so far, capture-to-result
    latency (ms), the loop's frame rate, the source's status line (empty when fine), and, when an Overlay was
    asked for, the drawn frame (H, W, 3) uint8 BGR, whose drawing time is the result's "render" stage."""
    result: FrameResult
    dropped: int
    latency_ms: float
    fps: float
    status: str
    image: np.ndarray | None = None


class Sink(Protocol):
    """Where live results go: `on_result` once per frame, on the loop's thread (keep it short: hand slow work
    to a thread of your own, as the stream publisher does); `close` once when the loop ends or fails."""

    def on_result(self, live: LiveResult) -> None: ...

    def close(self) -> None: ...


def source_status(grab) -> str:
    """The status line a live view shows for a LatestFrameGrabber: its message while the source is in
    trouble (reconnecting, lost), empty while it is fine or has simply ended."""
    st = grab.status
    return st.message if st.state not in ("ok", "ended", "closed") else ""


def live_result(result: FrameResult, grab, fps: FpsMeter, overlay: Overlay | None = None,
                status: str | None = None) -> LiveResult:
    """One frame's LiveResult: latency from its capture time, the frame rate ticked, the grabber's drops;
    status: None for `source_status(grab)`. With an overlay, the frame is drawn (see `draw`)."""
    live = LiveResult(result, grab.dropped, (time.monotonic() - result.frame.capture_time) * 1000.0, fps.tick(),
                      source_status(grab) if status is None else status)
    return draw(live, overlay) if overlay is not None else live


def draw(live: LiveResult, overlay: Overlay = Overlay()) -> LiveResult:
    """The live result with its frame drawn (a copy): heatmaps if asked, skeletons, faces, then the timing
    panel, which lists the drawing itself as the "render" stage; the returned result's times include it too
    (the pipeline's own FrameResult is left as it was)."""
    from poselive.render import draw_faces, draw_heatmaps, draw_hud, draw_people
    r = live.result
    t = time.perf_counter()
    img = r.frame.image.copy()
    if overlay.heatmaps and r.heatmaps:
        draw_heatmaps(img, [(h.heatmaps, h.image_to_heatmap) for h in r.heatmaps])
    draw_people(img, r.people)
    if r.faces:
        draw_faces(img, r.faces)
    times = StageTimes({**r.times.ms, "render": (time.perf_counter() - t) * 1000.0})
    if overlay.hud:
        draw_hud(img, fps=live.fps, times=times, dropped=live.dropped, latency_ms=live.latency_ms,
                 status=live.status or None)
    return replace(live, result=replace(r, times=times), image=img)


def stream(source, pipeline: Pipeline | None = None, *, tasks: str = "body", device: str = "auto",
           max_frames: int | None = None, realtime: bool = False, overlay: Overlay | None = None
           ) -> Iterator[LiveResult]:
    """Run the pipeline over a source (camera index, file, folder, URL, 'synthetic', or an open FrameSource),
    frame after frame; overlay: also draw each frame (LiveResult.image).

        for live in poselive.stream("0"):
            for person in live.result.people: ...
    """
    from poselive.sources import FrameSource, LatestFrameGrabber, open_source
    pipe = pipeline or build_pipeline(tasks, device)
    src = source if isinstance(source, FrameSource) else open_source(str(source), realtime=realtime)
    fps = FpsMeter()
    n = 0
    with LatestFrameGrabber(src) as grab:
        for frame in grab:
            yield live_result(pipe(frame), grab, fps, overlay)
            n += 1
            if max_frames is not None and n >= max_frames:
                break


def run_live(source, pipeline: Pipeline, sinks: list[Sink], *, max_frames: int | None = None,
             realtime: bool = False, overlay: Overlay | None = None) -> int:
    """Every live result of `source` (as `stream` takes it) handed to each sink in turn; returns the number
    of frames. The sinks are closed if the loop fails (what they wrote so far is kept, and the error goes on);
    after a normal end the caller closes them."""
    n = 0
    try:
        for live in stream(source, pipeline, max_frames=max_frames, realtime=realtime, overlay=overlay):
            for sink in sinks:
                sink.on_result(live)
            n += 1
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return n
