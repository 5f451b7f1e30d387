"""Tracking video files, the part every runner shares: which videos (`find_videos`), where each one's outputs go
and whether they are there already, one video through the pipeline into its JSONL (and MP4) (`process_video`),
and the closing table. `poselive track` runs it locally (batch.py) or on Ray workers (cluster.py).

A video whose output exists is skipped (unless --redo); outputs appear under their final names only when a
video is finished (written to a temporary file, then renamed); a video that cannot be read is reported as
failed in the summary and the others go on. Outputs are named by the video's stem (clip.mp4 -> clip.jsonl);
two videos with one stem stop the command before any work (`check_output_names`)."""
from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from poselive.errors import InputError, SourceError
from poselive.outputs import JsonlWriter, VideoWriter
from poselive.pipeline import FrameResult, Pipeline
from poselive.serialize import frame_json

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}


@dataclass(frozen=True)
class VideoSummary:
    """One video's outcome. status: done, partial (source ended early: truncated or corrupt), skipped, failed."""
    video: str
    status: str
    frames: int = 0
    track_ids: int = 0
    mean_track_frames: float = 0.0
    seconds: float = 0.0
    message: str = ""

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def find_videos(inputs: list[str]) -> list[Path]:
    """Video files named directly or found (not recursively) in the given folders, sorted, without repeats."""
    out: list[Path] = []
    for s in inputs:
        p = Path(s)
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix.lower() in VIDEO_EXTENSIONS and q.is_file())
        elif p.exists():
            out.append(p)
        else:
            raise SourceError(f"cannot find {p}: no such file or folder")
    seen, unique = set(), []
    for p in out:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique


def output_paths(video: Path, out_dir: Path) -> tuple[Path, Path]:
    return out_dir / f"{video.stem}.jsonl", out_dir / f"{video.stem}.mp4"


def check_output_names(videos: list[Path], out_dir: Path, write_video: bool) -> None:
    """Each video's outputs are its own. Two videos with one stem (clip.mp4 and clip.avi, or a/clip.mp4 and
    b/clip.mp4) would write one clip.jsonl, the second replacing the first and a rerun skipping both; and an
    annotated clip.mp4 written into the videos' own folder would replace the video. Either raises InputError
    before any work starts."""
    owner: dict[Path, Path] = {}
    inputs = {v.resolve() for v in videos}
    for v in videos:
        jsonl, mp4 = output_paths(v, out_dir)
        if jsonl.resolve() in owner:
            raise InputError(f"{owner[jsonl.resolve()]} and {v} would both be tracked into {jsonl}; track them "
                             f"into separate --out folders, or rename one")
        owner[jsonl.resolve()] = v
        for out in (jsonl, mp4) if write_video else (jsonl,):
            if out.resolve() in inputs:
                raise InputError(f"writing {out} would replace the video itself; choose another --out folder")


def process_video(video: Path, pipeline: Pipeline, out_dir: Path, write_video: bool = False, render=None,
                  progress=None) -> VideoSummary:
    """Track one video. render(result) -> image draws the overlay for the MP4. progress: called with the
    number of frames done so far and the number the video announces (None if unknown), for progress bars."""
    from poselive.sources import open_source
    jsonl_path, mp4_path = output_paths(video, out_dir)
    t0 = time.perf_counter()
    try:
        source = open_source(str(video))
    except SourceError as e:
        return VideoSummary(video.name, "failed", message=str(e))
    pipeline.reset()
    lengths: Counter[int] = Counter()
    frames = 0
    jw = JsonlWriter(jsonl_path)
    vw = VideoWriter(mp4_path, source.fps or 25.0) if write_video else None
    try:
        with source:
            for frame in source:
                result: FrameResult = pipeline(frame)
                jw.write(frame_json(frame.index, frame.video_time, result.people, result.faces))
                if vw is not None:
                    vw.write(render(result))
                for p in result.people:
                    if p.track_id >= 0:
                        lengths[p.track_id] += 1
                frames += 1
                if progress is not None:
                    progress(frames, source.frame_count)
            ended = source.status.message
    except BaseException:
        # Nothing half-written under a final name: the next run redoes this video.
        for w in (jw, vw):
            if w is not None:
                w.close_unfinished()
        raise
    truncated = "truncated" in ended
    jw.close()
    if vw is not None:
        vw.close()
    if frames == 0:
        jsonl_path.unlink(missing_ok=True)
        if write_video:
            mp4_path.unlink(missing_ok=True)
        return VideoSummary(video.name, "failed", message=ended or "no frame could be decoded",
                            seconds=time.perf_counter() - t0)
    mean_len = sum(lengths.values()) / len(lengths) if lengths else 0.0
    return VideoSummary(video.name, "partial" if truncated else "done", frames, len(lengths), mean_len,
                        time.perf_counter() - t0, ended if truncated else "")


def summary_table(rows: list[VideoSummary]) -> str:
    head = f"{'video':<44} {'status':<8} {'frames':>6} {'ids':>5} {'mean track':>10} {'fps':>6}  note"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.video[:44]:<44} {r.status:<8} {r.frames:>6} {r.track_ids:>5} "
                     f"{r.mean_track_frames:>10.1f} {r.fps:>6.1f}  {r.message[:80]}")
    done = [r for r in rows if r.status in ("done", "partial")]
    lines.append(f"{len(done)} tracked, {sum(r.status == 'skipped' for r in rows)} skipped, "
                 f"{sum(r.status == 'failed' for r in rows)} failed; {sum(r.frames for r in done)} frames")
    return "\n".join(lines)


def overlay(result: FrameResult):
    from poselive.render import draw_people
    img = result.frame.image.copy()
    draw_people(img, result.people)
    return img


def pending_videos(videos: list[Path], out_dir: Path, redo: bool) -> tuple[list[Path], dict[Path, VideoSummary]]:
    """Videos still to track, and summary rows for those skipped because their JSONL exists."""
    todo, skipped = [], {}
    for v in videos:
        if not redo and output_paths(v, out_dir)[0].exists():
            skipped[v] = VideoSummary(v.name, "skipped", message="output exists (use --redo)")
        else:
            todo.append(v)
    return todo, skipped


class VideoProgress:
    """A process_video progress callback drawing a FrameProgress bar, made once the video's length is known."""

    def __init__(self, desc: str, enabled: bool = True, **bar_options):
        self.desc, self.enabled, self.bar_options = desc, enabled, bar_options
        self.bar = None

    def __call__(self, done: int, total: int | None) -> None:
        from poselive.progress import FrameProgress
        if self.bar is None:
            self.bar = FrameProgress(total, self.desc, enabled=self.enabled, **self.bar_options)
        self.bar.update(done)

    def __enter__(self) -> VideoProgress:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
