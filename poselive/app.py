"""The live loop shared by `poselive run`, `poselive demo`, the GUI and the stream server:
source -> latest-frame grabber -> pipeline -> (render, write, emit).

`stream(source)` is the in-process API: iterate over FrameResults."""
from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from poselive.errors import PoseliveError, SourceError
from poselive.pipeline import FrameResult, Pipeline, PipelineConfig
from poselive.records import StageTimes
from poselive.weights import DEFAULT_DETECTOR, shipped_path

log = logging.getLogger(__name__)

DEMO_CLIP = shipped_path("demos/vtest_short.mp4")


def build_pipeline(tasks: str = "body", device: str = "auto", smoothing: bool = True, heatmaps: bool = False,
                   body_model: str = "body-lite", detector: str = DEFAULT_DETECTOR) -> Pipeline:
    """A Pipeline for a comma list of tasks ("body", "face"); detector: the person detector's weights."""
    from poselive.estimator import PoseEstimator
    names = {t.strip() for t in tasks.split(",") if t.strip()}
    unknown = names - {"body", "face"}
    if unknown:
        raise PoseliveError(f"unknown task {', '.join(sorted(unknown))}; use body, face or body,face")
    face_stage = None
    if "face" in names:
        from poselive.face_estimator import FaceStage
        face_stage = FaceStage(device=device)
    return Pipeline(PoseEstimator(body_model, device=device, detector=detector),
                    PipelineConfig(smoothing=smoothing, keep_heatmaps=heatmaps), face_stage=face_stage,
                    bodies="body" in names)


class FpsMeter:
    """Frames per second over the last `window` frames."""

    def __init__(self, window: int = 30):
        self._t: deque[float] = deque(maxlen=window)

    def tick(self) -> float:
        self._t.append(time.perf_counter())
        if len(self._t) < 2:
            return 0.0
        return (len(self._t) - 1) / max(self._t[-1] - self._t[0], 1e-9)


@dataclass(frozen=True, eq=False)
class LiveResult:
    """A FrameResult plus what the live loop knows: frames dropped by the grabber so far, capture-to-result
    latency (ms), the loop's frame rate, and the source's status line (empty when fine)."""
    result: FrameResult
    dropped: int
    latency_ms: float
    fps: float
    status: str


def stream(source, pipeline: Pipeline | None = None, *, tasks: str = "body", device: str = "auto",
           max_frames: int | None = None, realtime: bool = False) -> Iterator[LiveResult]:
    """Run the pipeline over a source (camera index, file, folder, URL, 'synthetic', or an open FrameSource):

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
            result = pipe(frame)
            st = grab.status
            yield LiveResult(result, grab.dropped, (time.monotonic() - frame.capture_time) * 1000.0, fps.tick(),
                             st.message if st.state not in ("ok", "ended", "closed") else "")
            n += 1
            if max_frames is not None and n >= max_frames:
                break


def render_live(live: LiveResult, heatmaps: bool = False, hud: bool = True) -> np.ndarray:
    """The overlay image of one live result (a copy of the frame)."""
    from poselive.render import draw_faces, draw_heatmaps, draw_hud, draw_people
    r = live.result
    t = time.perf_counter()
    img = r.frame.image.copy()
    if heatmaps and r.heatmaps:
        draw_heatmaps(img, [(h.heatmaps, h.image_to_heatmap) for h in r.heatmaps])
    draw_people(img, r.people)
    if r.faces:
        draw_faces(img, r.faces)
    if hud:
        # The HUD shows render time as a stage too, in a copy: the result itself stays as the pipeline made it.
        times = StageTimes({**r.times.ms, "render": (time.perf_counter() - t) * 1000.0})
        draw_hud(img, fps=live.fps, times=times, dropped=live.dropped, latency_ms=live.latency_ms,
                 status=live.status or None)
    return img


def run_command(args) -> int:
    from poselive.image_header import pixel_limit
    from poselive.outputs import JsonlWriter, VideoWriter
    from poselive.serialize import frame_json
    from poselive.paths import check_paths
    from poselive.sources import open_source, source_path
    if args.show:
        from poselive.gui.window import gui_command
        return gui_command(args)
    from poselive.progress import FrameProgress
    # Everything the user typed is checked, and the source opened, before the models load (seconds).
    local = source_path(args.source)
    check_paths([local] if local is not None else [], files={"--json": args.json, "--out": args.out})
    src = open_source(args.source, max_pixels=pixel_limit(args.max_megapixels))
    try:
        pipe = build_pipeline(args.task, args.device, smoothing=not args.no_smooth, heatmaps=args.heatmaps)
    except BaseException:
        src.close()
        raise
    jw = JsonlWriter(args.json) if args.json else None
    vw = VideoWriter(args.out, src.fps or 25.0) if args.out else None
    total = src.frame_count
    if total is not None and args.max_frames is not None:
        total = min(total, args.max_frames)
    frames = 0
    progress = FrameProgress(total, src.name, live=src.is_live)
    try:
        for live in stream(src, pipe, max_frames=args.max_frames):
            r = live.result
            if jw:
                jw.write(frame_json(r.frame.index, r.frame.video_time, r.people, r.faces))
            if vw:
                vw.write(render_live(live, heatmaps=args.heatmaps, hud=not args.no_hud))
            frames += 1
            progress.update(frames, live.dropped, live.latency_ms)
    except BaseException:
        # Whatever happened (a write error, Ctrl-C), what was written so far is kept.
        for w in (jw, vw):
            if w is not None:
                w.close()
        raise
    finally:
        progress.close()
    if frames == 0 and args.max_frames != 0:
        # An input that gives no frame is an error, as `track` reports it, not an empty file under its name.
        for w in (jw, vw):
            if w is not None:
                w.close_unfinished()
        raise SourceError(f"no frame could be read from {src.name} (empty, or not a video or image OpenCV "
                          f"can decode); nothing was written")
    for w in (jw, vw):  # a truncated video ends early: its frames so far are kept
        if w is not None:
            w.close()
    msg = src.status.message
    print(f"{frames} frames from {src.name}" + (f"; {msg}" if "truncated" in msg else "")
          + (f"; JSON lines in {args.json}" if args.json else "") + (f"; video in {args.out}" if args.out else ""))
    return 0


def demo_command(args) -> int:
    """Track people through the bundled sample clip: annotated MP4 + JSONL in --out."""
    from poselive.batch import VideoProgress, overlay, process_video, summary_table
    if not DEMO_CLIP.exists():
        raise PoseliveError(f"the sample clip {DEMO_CLIP} is missing from this install; reinstall poselive")
    if args.show:
        from poselive.gui.window import gui_command
        args.source = str(DEMO_CLIP)
        return gui_command(args)
    from poselive.paths import check_output_folder
    out = check_output_folder(args.out, "--out")
    pipe = build_pipeline("body", args.device)
    with VideoProgress(DEMO_CLIP.name) as progress:
        row = process_video(DEMO_CLIP, pipe, out, write_video=True, render=overlay, progress=progress)
    print(summary_table([row]))
    print(f"annotated video: {out / (DEMO_CLIP.stem + '.mp4')}\nper-frame JSON lines: "
          f"{out / (DEMO_CLIP.stem + '.jsonl')}")
    return 0
