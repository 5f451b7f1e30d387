"""`poselive run` and `poselive demo`: the live loop (poselive.live) over one source, its results written by
sinks (JSONL, MP4) while a progress line shows how far it got."""
from __future__ import annotations

import logging

from poselive.errors import PoseliveError, SourceError
from poselive.live import build_pipeline, stream  # noqa: F401 (also importable from here, for scripts)
from poselive.weights import shipped_path

log = logging.getLogger(__name__)

DEMO_CLIP = shipped_path("demos/vtest_short.mp4")


class _ProgressSink:
    """The progress bar (files) or status line (cameras) of `run`, as a sink: frames done, drops, latency."""

    def __init__(self, progress):
        self.progress, self.frames = progress, 0

    def on_result(self, live) -> None:
        self.frames += 1
        self.progress.update(self.frames, live.dropped, live.latency_ms)

    def close(self) -> None:
        self.progress.close()


def run_command(args) -> int:
    from poselive.image_header import pixel_limit
    from poselive.live import Overlay, run_live
    from poselive.outputs import JsonlSink, VideoSink
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
    files = []
    if args.json:
        files.append(JsonlSink(args.json))
    if args.out:
        files.append(VideoSink(args.out, src.fps or 25.0))
    total = src.frame_count
    if total is not None and args.max_frames is not None:
        total = min(total, args.max_frames)
    progress = _ProgressSink(FrameProgress(total, src.name, live=src.is_live))
    overlay = Overlay(heatmaps=args.heatmaps, hud=not args.no_hud) if args.out else None
    # Whatever happens (a write error, Ctrl-C), what was written so far is kept: run_live closes the sinks.
    frames = run_live(src, pipe, [*files, progress], max_frames=args.max_frames, overlay=overlay)
    progress.close()
    if frames == 0 and args.max_frames != 0:
        # An input that gives no frame is an error, as `track` reports it, not an empty file under its name.
        for sink in files:
            sink.discard()
        raise SourceError(f"no frame could be read from {src.name} (empty, or not a video or image OpenCV "
                          f"can decode); nothing was written")
    for sink in files:  # a truncated video ends early: its frames so far are kept
        sink.close()
    msg = src.status.message
    print(f"{frames} frames from {src.name}" + (f"; {msg}" if "truncated" in msg else "")
          + (f"; JSON lines in {args.json}" if args.json else "") + (f"; video in {args.out}" if args.out else ""))
    return 0


def demo_command(args) -> int:
    """Track people through the bundled sample clip: annotated MP4 + JSONL in --out."""
    from poselive.videos import VideoProgress, overlay, process_video, summary_table
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
