"""Fault injection: bad files, bad paths, bad values, a crash in the middle of `track`, replayed as a user (or a
program) would meet them. Each answer must be one line and exit status 2 (or a ValueError / TypeError in the
API), decided before any model loads, and must leave no output under a final name that was not finished.

`pytest -m faults` runs this file and the probes marked `faults` elsewhere (the stream server's misbehaving
clients, foreign weights, the decoder's limits) in under a minute. The networks here are tiny random ones in
a private models folder: what is tested is what poselive does around them."""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from poselive.checkpoint import FORMAT, load_model, save_checkpoint
from poselive.cli import main
from poselive.errors import PoseliveError, SourceError, WeightsError
from poselive.nets.configs import NetConfig
from poselive.nets.hourglass import StackedHourglass
from poselive.records import Frame, StageTimes
from poselive.sources import SyntheticSource, open_source, read_image
from poselive.weights import DEFAULT_DETECTOR, STILL_MODEL

pytestmark = pytest.mark.faults
ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "body-lite": NetConfig("body-lite", "coco17", (48, 64), stacks=1, depth=2, width=16, stem_width=8,
                           block="bottleneck"),
    STILL_MODEL: NetConfig(STILL_MODEL, "coco17", (48, 64), stacks=1, depth=2, width=16, stem_width=8,
                           block="bottleneck"),
    DEFAULT_DETECTOR: NetConfig(DEFAULT_DETECTOR, "person_centre", (64, 64), stacks=1, depth=2, width=16,
                                stem_width=8, block="bottleneck", extra_outputs=2),
    "face-lite": NetConfig("face-lite", "face68", (64, 64), stacks=1, depth=2, width=16, stem_width=8,
                           block="bottleneck"),
}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> Path:
    """A models folder holding tiny random networks under the shipped names. The detector finds no one (its
    centre map is a constant -20 logit), so `track` runs fast: what is tested there is what track does with
    files; the keypoint networks run on given boxes in the API tests."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    for name, cfg in TINY.items():
        model = StackedHourglass(cfg)
        if cfg.schema == "person_centre":
            with torch.no_grad():
                model.heads[-1].weight[0].zero_()
                model.heads[-1].bias[0] = -20.0
        save_checkpoint(folder / f"{name}.pt", model)
    return folder


@pytest.fixture(autouse=True)
def private_models(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("POSELIVE_MODELS", str(tiny_models))
    monkeypatch.setenv("POSELIVE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def no_models(monkeypatch):
    """Loading any network fails the test: what is checked must be decided before a model loads."""
    from poselive import backends

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")
    monkeypatch.setattr(backends, "make_backend", refuse)


def write_clip(path: Path, frames: int = 12, size=(160, 120)) -> Path:
    """A short video of the synthetic walkers (MP4 or AVI by the suffix)."""
    fourcc = "MJPG" if path.suffix == ".avi" else "mp4v"
    path.parent.mkdir(parents=True, exist_ok=True)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, size)
    with SyntheticSource(frames=frames, size=size, people=2) as scene:
        for f in scene:
            out.write(f.image)
    out.release()
    return path


def write_photo(path: Path, size=(160, 120)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), SyntheticSource(frames=1, size=size).render(0))
    return path


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("poselive: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*part*"))


# ------------------------------------------------------------------------------------- no silent overwrite
def test_track_refuses_two_videos_with_one_stem_before_any_work(tmp_path, no_models, capsys):
    write_clip(tmp_path / "in" / "clip.mp4")
    write_clip(tmp_path / "in" / "clip.avi")
    write_clip(tmp_path / "x" / "clip.mp4")
    out = tmp_path / "out"
    assert main(["track", str(tmp_path / "in"), str(tmp_path / "x" / "clip.mp4"), "--out", str(out)]) == 2
    err = one_line_error(capsys)
    assert "clip.avi" in err and "clip.mp4" in err and "clip.jsonl" in err
    assert not out.exists() or not list(out.iterdir())


def test_track_never_writes_an_annotated_video_over_its_input(tmp_path, no_models, capsys):
    video = write_clip(tmp_path / "in" / "clip.mp4")
    before = video.read_bytes()
    assert main(["track", str(video), "--out", str(video.parent), "--video"]) == 2
    assert "replace the video" in one_line_error(capsys)
    assert video.read_bytes() == before


def test_predict_render_refuses_images_that_share_a_stem(tmp_path, no_models, capsys):
    images = [write_photo(tmp_path / p) for p in ("dupA/1.jpg", "dupA/1.png", "dupB/1.jpg")]
    assert main(["predict", *map(str, images), "--out", str(tmp_path / "r.json"),
                 "--render", str(tmp_path / "drawn")]) == 2
    assert "1.png" in one_line_error(capsys)
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "drawn").exists()


def test_predict_records_say_which_file_they_came_from(tmp_path):
    a, b = write_photo(tmp_path / "dupA" / "1.jpg"), write_photo(tmp_path / "dupB" / "1.jpg", (200, 150))
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"1.jpg": [[10, 10, 40, 80]]}))
    out = tmp_path / "r.json"
    assert main(["predict", str(a), str(b), "--boxes", str(boxes), "--out", str(out), "--device", "cpu"]) == 0
    records = json.loads(out.read_text())
    assert [r["path"] for r in records] == [str(a), str(b)]
    assert [r["file_name"] for r in records] == ["1.jpg", "1.jpg"]


# ------------------------------------------------------------------- bad paths: one line, before the models
@pytest.fixture
def given(tmp_path):
    """Paths for the argument lists below: an existing video, photo, file and folder, and missing ones."""
    return {"VIDEO": str(write_clip(tmp_path / "v.avi", frames=3)), "PHOTO": str(write_photo(tmp_path / "p.jpg")),
            "FILE": str(tmp_path / "p.jpg"), "DIR": str(tmp_path), "OUT": str(tmp_path / "o" / "r.json"),
            "MISSING": str(tmp_path / "missing.mp4"), "MISSING_JPG": str(tmp_path / "missing.jpg")}


@pytest.mark.parametrize("argv,said", [
    ("run --source VIDEO --json DIR", "it is a folder"),
    ("run --source VIDEO --json /proc/x.jsonl", "nothing can be written in /proc"),
    ("run --source VIDEO --out VIDEO", "also an input"),
    ("run --source VIDEO --json OUT --out OUT", "both name"),
    ("predict PHOTO --out DIR", "it is a folder"),
    ("predict PHOTO --out FILE", "also an input"),
    ("predict PHOTO --out OUT --render FILE", "it is a file"),
    ("track VIDEO --out FILE", "it is a file"),
    ("demo --out FILE", "it is a file"),
    ("run --source MISSING --json OUT", "missing.mp4"),
    ("serve --source MISSING --udp 127.0.0.1:9", "missing.mp4"),
    ("predict MISSING_JPG --out OUT", "missing.jpg: no such file"),
    ("track MISSING --out DIR", "missing.mp4"),
])
def test_bad_paths_are_one_line_before_any_model_loads(argv, said, given, tmp_path, no_models, capsys):
    if "/proc" in argv and not Path("/proc/self").exists():
        pytest.skip("no /proc on this system")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main([given.get(a, a) for a in argv.split()]) == 2
    assert said in one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written, not even a .part file


# --------------------------------------------------------------------------- inputs that give no frame
class NoPeople:
    """Stands in for the pipeline where no frame should ever reach it."""

    def __call__(self, frame: Frame):
        from poselive.pipeline import FrameResult
        return FrameResult(frame, [], [], StageTimes())


@pytest.mark.parametrize("kind", ["notanimage.jpg", "empty.avi"])
def test_run_on_an_input_without_frames_is_an_error_and_writes_nothing(kind, tmp_path, monkeypatch, capsys):
    import poselive.app
    monkeypatch.setattr(poselive.app, "build_pipeline", lambda *a, **k: NoPeople())
    source = tmp_path / kind
    if kind.endswith(".jpg"):
        source.write_bytes(b"this is not a jpeg")
    else:  # a video writer opened and closed without a frame
        cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48)).release()
    out = tmp_path / "t.jsonl"
    assert main(["run", "--source", str(source), "--json", str(out)]) == 2
    assert "no frame could be read" in one_line_error(capsys)
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("wh", [(1, 1), (8200, 16)])
def test_the_video_writer_names_the_frame_size_it_cannot_encode(wh, tmp_path):
    from poselive.outputs import VideoWriter
    w = VideoWriter(tmp_path / "o.mp4", 10)
    with pytest.raises(PoseliveError, match=rf"{wh[0]}x{wh[1]} px.*2 to 8191 px"):
        w.write(np.zeros((wh[1], wh[0], 3), np.uint8))
    w.close_unfinished()


# ------------------------------------------------------------------------------ truncated and bad videos
def faststart(mp4: bytes) -> bytes:
    """The same MP4 with its index ('moov') moved in front of the frames, as `ffmpeg -movflags +faststart`
    writes it: chunk offsets (stco / co64) grow by the index's size."""
    def boxes(data, start=0, end=None):
        i, end = start, len(data) if end is None else end
        while i < end:
            size, kind = struct.unpack(">I4s", data[i:i + 8])
            yield kind, i, size
            i += size
    top = {kind: (i, size) for kind, i, size in boxes(mp4)}
    mi, ms = top[b"moov"]
    moov = bytearray(mp4[mi:mi + ms])

    def shift(start, end):
        for kind, i, size in boxes(moov, start, end):
            if kind in (b"trak", b"mdia", b"minf", b"stbl"):
                shift(i + 8, i + size)
            elif kind in (b"stco", b"co64"):
                n, wide = struct.unpack(">I", moov[i + 12:i + 16])[0], kind == b"co64"
                fmt, step = (">Q", 8) if wide else (">I", 4)
                for k in range(n):
                    at = i + 16 + k * step
                    moov[at:at + step] = struct.pack(fmt, struct.unpack(fmt, moov[at:at + step])[0] + ms)
    shift(8, len(moov))
    fi, fs = top[b"ftyp"]
    rest = b"".join(mp4[i:i + s] for kind, (i, s) in top.items() if kind not in (b"ftyp", b"moov"))
    return mp4[fi:fi + fs] + bytes(moov) + rest


def test_a_cut_mp4_says_whether_it_can_be_read(tmp_path, caplog):
    whole = write_clip(tmp_path / "whole.mp4", frames=30).read_bytes()
    index_last = tmp_path / "index_last.mp4"
    index_last.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SourceError, match="cut short before its index.*faststart"):
        open_source(index_last)
    index_first = tmp_path / "index_first.mp4"
    index_first.write_bytes(faststart(whole)[: len(whole) // 2])
    with open_source(index_first) as src:
        frames = list(src)
    assert 5 <= len(frames) < 30 and "truncated" in src.status.message


def test_junk_files_are_one_line_each_in_track_and_the_rest_goes_on(tmp_path, capsys):
    good = write_clip(tmp_path / "in" / "good.avi", frames=4)
    (tmp_path / "in" / "junk.mp4").write_bytes(os.urandom(5000))
    (tmp_path / "in" / "empty.avi").write_bytes(b"")
    assert main(["track", str(good.parent), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 1
    table = capsys.readouterr().out
    assert "junk.mp4" in table and "empty.avi" in table and "1 tracked, 0 skipped, 2 failed" in table
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.jsonl"]


# ------------------------------------------------------------------------------ bad values: boxes, dtypes
@pytest.fixture(scope="module")
def estimators(tiny_models):
    from poselive import PoseEstimator
    from poselive.face_estimator import FaceEstimator
    return (PoseEstimator(tiny_models / "body-lite.pt", device="cpu"),
            FaceEstimator(tiny_models / "face-lite.pt", device="cpu", fit_pose=False))


IMAGE = SyntheticSource(frames=1, size=(160, 120)).render(0)
BOX = [20.0, 10.0, 60.0, 100.0]


@pytest.mark.parametrize("bad,said", [([np.nan, 0, 10, 10], "not a finite number"),
                                      ([0, 0, np.inf, 10], "not a finite number"),
                                      ([5, 5, 0, 10], "no area"), ([5, 5, 10, -3], "no area")])
def test_boxes_that_are_not_finite_or_have_no_area_are_refused_by_name(bad, said, estimators):
    for est in estimators:
        with pytest.raises(ValueError, match=rf"box 1 \[.*\] .*{said}") as e:
            est(IMAGE, boxes=[BOX, bad])
        assert isinstance(e.value, PoseliveError)


def test_a_box_outside_the_image_is_warned_about(estimators, caplog):
    for est in estimators:
        caplog.clear()
        assert len(est(IMAGE, boxes=[[500, 500, 40, 80]])) == 1
        assert "box 0 [500, 500, 40, 80] lies outside the 160x120 image" in caplog.text


def test_predict_refuses_a_nan_box_and_writes_no_invalid_json(tmp_path, no_models, capsys):
    photo = write_photo(tmp_path / "a.jpg")
    boxes = tmp_path / "boxes.json"
    boxes.write_text('{"a.jpg": [[10, 10, 40, 80], [NaN, 0, 10, 10]]}')  # Python's json reads NaN
    out = tmp_path / "r.json"
    assert main(["predict", str(photo), "--boxes", str(boxes), "--out", str(out)]) == 2
    err = one_line_error(capsys)
    assert "'a.jpg'" in err and "box 1 [nan, 0, 10, 10] is not a finite number" in err
    assert not out.exists()


@pytest.mark.parametrize("image,error", [
    (IMAGE.astype(np.float32) / 255, TypeError), (IMAGE.astype(np.int32) - 128, TypeError),
    (IMAGE > 128, TypeError), (np.full(IMAGE.shape, np.nan, np.float32), TypeError),
    (IMAGE[:, :, :2], ValueError), (np.dstack([IMAGE, IMAGE[:, :, :2]]), ValueError),
    (IMAGE[:0], ValueError), ([[1, 2], [3, 4]], TypeError),
])
def test_images_other_than_uint8_bgr_or_grey_are_refused_with_what_was_expected(image, error, estimators):
    for est in estimators:
        with pytest.raises(error, match="expected|empty") as e:
            est(image, boxes=[BOX])
        assert isinstance(e.value, (PoseliveError, ValueError))


def test_grey_bgra_and_uint16_images_are_taken_as_uint8_bgr(estimators):
    grey = cv2.cvtColor(IMAGE, cv2.COLOR_BGR2GRAY)
    for est in estimators:
        def points(image):
            (found,) = est(image, boxes=[BOX])
            return found.keypoints if hasattr(found, "keypoints") else found.landmarks
        assert np.array_equal(points(grey[:, :, None]), points(grey))
        assert np.array_equal(points(np.dstack([IMAGE, np.full(grey.shape, 255, np.uint8)])), points(IMAGE))
        assert np.array_equal(points(IMAGE.astype(np.uint16) * 257), points(IMAGE))


# ----------------------------------------------------------------------------------- bounded resources
@pytest.mark.parametrize("field,value", [("width", 200_000), ("stacks", 100_000), ("blur_sigma", 20_000.0)])
def test_a_checkpoint_asking_for_a_huge_network_is_refused_at_once(field, value, tmp_path, capsys):
    cfg = {**TINY["body-lite"].to_dict(), field: value}
    path = tmp_path / "huge.pt"
    torch.save({"format": FORMAT, "config": cfg, "state_dict": {}}, path)
    t = time.perf_counter()
    with pytest.raises(WeightsError, match=rf"huge.pt .*{field} = {value!r} is not a number from"):
        load_model(path)
    assert time.perf_counter() - t < 1.0
    photo = write_photo(tmp_path / "p.jpg")
    assert main(["predict", str(photo), "--model", str(path), "--out", str(tmp_path / "r.json"),
                 "--device", "cpu"]) == 2
    assert field in one_line_error(capsys)


def png_bomb(path: Path, w: int, h: int) -> Path:
    """A real grey PNG of w x h black pixels: a few hundred kB on disk, w * h bytes once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    z, row = zlib.compressobj(9), bytes(w + 1)
    idat = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.mark.slow
def test_an_image_over_the_pixel_limit_is_refused_before_it_is_decoded(tmp_path, caplog, capsys):
    bomb = png_bomb(tmp_path / "bomb.png", 9000, 6000)  # 54 megapixels, 54 MB decoded, 55 kB on disk
    tracemalloc.start()
    try:
        with pytest.raises(SourceError, match="bomb.png: 9000x6000 px is over the limit of 50 megapixels"):
            read_image(bomb)
        assert tracemalloc.get_traced_memory()[1] < 5e6  # the file's bytes, not its pixels
    finally:
        tracemalloc.stop()
    photo = write_photo(tmp_path / "photo.jpg")
    out = tmp_path / "r.json"
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"photo.jpg": [BOX], "bomb.png": [BOX]}))
    assert main(["predict", str(bomb), str(photo), "--boxes", str(boxes), "--out", str(out),
                 "--device", "cpu"]) == 0
    assert "skipping bomb.png: 9000x6000 px" in caplog.text and "--max-megapixels" in caplog.text
    assert [r["file_name"] for r in json.loads(out.read_text())] == ["photo.jpg"]
    assert main(["predict", str(bomb), "--boxes", str(boxes), "--out", str(out), "--device", "cpu",
                 "--max-megapixels", "60"]) == 0  # the option raises the limit
    assert [r["file_name"] for r in json.loads(out.read_text())] == ["bomb.png"]


def test_image_sizes_are_read_from_the_headers_of_every_format_poselive_reads(tmp_path):
    from poselive.image_header import image_size
    image = np.zeros((37, 53, 3), np.uint8)
    for suffix in (".jpg", ".png", ".bmp", ".tif", ".webp", ".ppm", ".pgm"):
        ok, data = cv2.imencode(suffix, image if suffix != ".pgm" else image[:, :, 0])
        assert ok and image_size(data.tobytes()) == (53, 37), suffix
    assert image_size(b"not an image") is None


# ------------------------------------------------------------------------------ a crash in the middle of track
@pytest.mark.slow
def test_kill_9_during_track_leaves_no_half_file_and_a_rerun_gives_the_same_bytes(tmp_path):
    videos = tmp_path / "in"
    for name in ("a", "b"):
        write_clip(videos / f"{name}.avi", frames=40)
    reference = tmp_path / "reference"
    assert main(["track", str(videos), "--out", str(reference), "--device", "cpu"]) == 0

    out = tmp_path / "out"
    victim = subprocess.Popen([sys.executable, "-m", "poselive.cli", "track", str(videos), "--out", str(out),
                               "--device", "cpu"], env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = out / ".a.jsonl.part"
    deadline = time.monotonic() + 120
    while not part.exists():  # the first video has begun
        assert time.monotonic() < deadline and victim.poll() is None, "track ended before it could be killed"
        time.sleep(0.005)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)
    assert not (out / "a.jsonl").exists() and not (out / "b.jsonl").exists()  # nothing under a final name
    assert part.exists()  # what a crash leaves behind: the temporary file, which the rerun replaces

    assert main(["track", str(videos), "--out", str(out), "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.jsonl", "b.jsonl"]
    for name in ("a.jsonl", "b.jsonl"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
