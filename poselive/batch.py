"""`poselive track`: many videos through one loaded model, one JSONL (and optionally an MP4) per video, here
(`track_videos`) or, with --ray, on Ray workers (poselive.cluster). What both runners share is in videos.py."""
from __future__ import annotations

from pathlib import Path

from poselive.errors import PoseliveError
from poselive.live import build_pipeline
from poselive.videos import (VideoProgress, VideoSummary, check_output_names, find_videos, overlay,
                             pending_videos, process_video, summary_table)


def track_videos(videos: list[Path], out_dir: Path, device: str = "auto", write_video: bool = False,
                 redo: bool = False, show_progress: bool = True) -> list[VideoSummary]:
    from tqdm import tqdm
    out_dir.mkdir(parents=True, exist_ok=True)
    todo, rows = pending_videos(videos, out_dir, redo)
    pipeline = build_pipeline("body", device) if todo else None
    overall = tqdm(total=len(todo), desc="videos", position=0, disable=not show_progress)
    for v in todo:
        with VideoProgress(v.name[:30], show_progress, leave=False, position=1) as progress:
            rows[v] = process_video(v, pipeline, out_dir, write_video, overlay, progress)
        overall.update(1)
    overall.close()
    return [rows[v] for v in videos]


def track_command(args) -> int:
    from poselive.paths import check_output_folder
    videos = find_videos(args.inputs)
    if not videos:
        raise PoseliveError(f"no videos found in {' '.join(args.inputs)}")
    # Before any model loads: a bad --out, or two videos that would share an output, cost no work.
    check_output_folder(args.out, "--out")
    check_output_names(videos, Path(args.out), args.video)
    if args.ray:
        from poselive.cluster import track_on_ray
        rows = track_on_ray(videos, Path(args.out), args.ray, args.device, args.video, args.redo)
    else:
        rows = track_videos(videos, Path(args.out), args.device, args.video, args.redo)
    print(summary_table(rows))
    return 1 if any(r.status == "failed" for r in rows) else 0
