"""The golden outputs that tests/test_golden.py holds byte for byte, and how to make them again.

    python3 -m tests.make_golden            # rewrite tests/golden/ from the code checked out here

Run it on the commit whose outputs are the reference (a change to the shipped weights, the default detector or
a threshold changes them on purpose); then the test holds every later commit to them. Each golden is made by the
command a user would run, on the ONNX Runtime backend (`--device onnx`: bit-for-bit repeatable on a CPU):

- `vtest_short.jsonl`: `poselive track demos/vtest_short.mp4` (the bundled clip, 150 frames)
- `closeup_faces.jsonl`: `poselive run --source CLIP --task body,face --max-frames 40 --json` on the close-up clip
  videos/face_recognition_short_hamilton_clip.mp4 (shared data)
- `predict_body.json`: `poselive predict` on five photos of unlabeled/people (shared data)
- `predict_face.json`: `poselive predict --task face` on three photos of face/300w/afw (shared data)
- `stream_messages.jsonl`: the stream's frame messages (`publish.messages.frame_message`) of the clip's first 30
  frames, with the frame's video time as its capture time so the file does not depend on the clock;
  `stream_faces.jsonl` the same on the close-up clip with `--task body,face` (shared data)

Photos are named relative to the shared data folder, so the files do not depend on where it is.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
CLIP = ROOT / "demos" / "vtest_short.mp4"
BODY_PHOTOS = [f"unlabeled/people/COCO_val2014_000000000{n}.jpg" for n in (192, 241, 257, 294, 328)]
FACE_PHOTOS = ["face/300w/afw/1051618982_1.jpg", "face/300w/afw/111076519_1.jpg", "face/300w/afw/1130084326_1.jpg"]
FACE_CLIP = "videos/face_recognition_short_hamilton_clip.mp4"
STREAM_FRAMES = 30


def shared_data_dir() -> Path:
    """$POSELIVE_DATA, else ../shared/data beside the project (as tests/conftest.py looks for it)."""
    return Path(os.environ.get("POSELIVE_DATA") or ROOT.parent / "shared" / "data")


def _poselive(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", "import sys; from poselive.cli import main; sys.exit(main())", *args],
                   cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)


def make_track(out: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        _poselive(["track", str(CLIP), "--out", tmp, "--device", "onnx"], ROOT)
        return Path(shutil.copy(Path(tmp) / "vtest_short.jsonl", out / "vtest_short.jsonl"))


def make_run_faces(out: Path, data: Path) -> Path:
    target = out / "closeup_faces.jsonl"
    _poselive(["run", "--source", FACE_CLIP, "--task", "body,face", "--max-frames", "40", "--json",
               str(target.resolve()), "--device", "onnx"], data)
    return target


def make_predict(out: Path, data: Path, task: str) -> Path:
    target = out / f"predict_{task}.json"
    photos = BODY_PHOTOS if task == "body" else FACE_PHOTOS
    _poselive(["predict", *photos, "--task", task, "--out", str(target.resolve()), "--device", "onnx"], data)
    return target


def make_stream(out: Path, clip: Path = CLIP, name: str = "stream_messages.jsonl", tasks: str = "body") -> Path:
    """Frame messages of a clip's first frames through the live pipeline, as the stream server builds them."""
    sys.path.insert(0, str(ROOT))
    from poselive.app import build_pipeline
    from poselive.publish.messages import encode, frame_message
    from poselive.sources import open_source
    pipe = build_pipeline(tasks, device="onnx")
    source = open_source(str(clip))
    lines = []
    try:
        for frame in source:
            if frame.index >= STREAM_FRAMES:
                break
            r = pipe(frame)
            h, w = frame.image.shape[:2]
            lines.append(encode(frame_message(frame.index, frame.video_time, frame.video_time, w, h, r.people,
                                              r.faces)))
    finally:
        source.close()
    target = out / name
    target.write_text("".join(line + "\n" for line in lines))
    return target


def make_all(out: Path = GOLDEN, data: Path | None = None) -> list[Path]:
    """Write every golden into `out` (those that need the shared data only when it is there); their paths."""
    out.mkdir(parents=True, exist_ok=True)
    data = data or shared_data_dir()
    made = [make_track(out), make_stream(out)]
    if data.is_dir():
        made += [make_run_faces(out, data), make_stream(out, data / FACE_CLIP, "stream_faces.jsonl", "body,face"),
                 make_predict(out, data, "body"), make_predict(out, data, "face")]
    else:
        print(f"shared data not found at {data}: the goldens that read it were not made", file=sys.stderr)
    return made


if __name__ == "__main__":
    for path in make_all():
        print(f"{path.relative_to(ROOT)}  {path.stat().st_size} bytes")
