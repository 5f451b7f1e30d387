"""MediaPipe BlazePose Full (mediapipe 0.10.14, legacy `mp.solutions.pose`) as a baseline for eval and bench.

MediaPipe pins its own numpy and protobuf, so it lives in a venv of its own and this file has two halves:

* run *inside that venv* as a script (standard library, numpy and mediapipe only; no poselive imports):
      python mediapipe_pose.py crops IN.npz OUT.npz     # IN: crops (N, H, W, 3) uint8 BGR
      python mediapipe_pose.py images IN.txt OUT.npz    # IN: one image path a line; whole images
      python mediapipe_pose.py time IMAGE [--repeats 30]
* called *from poselive* (any numpy): `mediapipe_on_crops(crops)`, `mediapipe_on_images(paths)` and
  `time_mediapipe(image_path, repeats)`
  start the script with the venv's interpreter: $POSELIVE_MEDIAPIPE_PYTHON, else ./venv-mp/bin/python in the
  repository. Set it up with
      python3 -m venv venv-mp && venv-mp/bin/pip install mediapipe==0.10.14

BlazePose's 33 landmarks map to COCO-17 with `BLAZEPOSE_TO_COCO17`; a joint's score is BlazePose's visibility.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

BLAZEPOSE_TO_COCO17 = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]
PYTHON_ENV = "POSELIVE_MEDIAPIPE_PYTHON"
REPO_VENV_PYTHON = Path(__file__).resolve().parents[2] / "venv-mp" / "bin" / "python"
INSTALL_HINT = ("python3 -m venv venv-mp && venv-mp/bin/pip install mediapipe==0.10.14 "
                f"(or point ${PYTHON_ENV} at a Python that has it)")
NO_MEDIAPIPE_EXIT = 3  # the script's exit status when `import mediapipe` fails


# =========================================================================== inside the MediaPipe venv
def _pose(static_image_mode: bool):
    import mediapipe as mp
    # model_complexity 1 = BlazePose Full (the model inside the wheel); 0 = lite, 2 = heavy.
    return mp.solutions.pose.Pose(static_image_mode=static_image_mode, model_complexity=1,
                                  min_detection_confidence=0.5)


def _coco17(result, width: int, height: int) -> np.ndarray | None:
    """(17, 3) x, y in image px (0-based pixel centres) and visibility, or None when no person was found.
    MediaPipe's normalised coordinates run over the image's full extent [0, W] (pixel edges), hence -0.5."""
    if result.pose_landmarks is None:
        return None
    lm = result.pose_landmarks.landmark
    return np.array([[lm[i].x * width - 0.5, lm[i].y * height - 0.5, lm[i].visibility]
                     for i in BLAZEPOSE_TO_COCO17], np.float32)


def _pose_each(images, count: int) -> tuple[np.ndarray, np.ndarray]:
    """BlazePose (static image mode) on each BGR image; None (unreadable) counts as not found."""
    keypoints = np.zeros((count, len(BLAZEPOSE_TO_COCO17), 3), np.float32)
    found = np.zeros(count, bool)
    with _pose(static_image_mode=True) as pose:
        for i, image in enumerate(images):
            if image is None:
                continue
            kp = _coco17(pose.process(np.ascontiguousarray(image[:, :, ::-1])), image.shape[1], image.shape[0])
            if kp is not None:
                keypoints[i], found[i] = kp, True
    return keypoints, found


def _run_crops(in_path: str, out_path: str) -> None:
    crops = np.load(in_path)["crops"]
    keypoints, found = _pose_each(crops, len(crops))
    np.savez(out_path, keypoints=keypoints, found=found)


def _run_images(in_path: str, out_path: str) -> None:
    """Whole images, as a user hands them over: BlazePose's own person detector picks (at most) one person."""
    import cv2
    paths = [line for line in open(in_path, encoding="utf-8").read().splitlines() if line]
    keypoints, found = _pose_each((cv2.imread(p, cv2.IMREAD_COLOR) for p in paths), len(paths))
    np.savez(out_path, keypoints=keypoints, found=found)


def _time(image_path: str, repeats: int) -> dict:
    import time

    import cv2
    import mediapipe as mp
    image = cv2.imread(image_path, cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read image {image_path}")
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    times, found = [], 0
    with _pose(static_image_mode=False) as pose:  # tracking mode: what a live pipeline runs
        for _ in range(3):
            pose.process(rgb)
        for _ in range(repeats):
            t0 = time.perf_counter()
            r = pose.process(rgb)
            times.append(time.perf_counter() - t0)
            found += r.pose_landmarks is not None
    ms = np.asarray(times) * 1e3
    return {"model": "BlazePose Full", "mediapipe": mp.__version__, "image_wh": [image.shape[1], image.shape[0]],
            "repeats": repeats, "median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
            "found_fraction": found / max(repeats, 1)}


def _script_main(argv: list[str]) -> int:
    try:
        import mediapipe  # noqa: F401
    except ImportError as e:
        print(f"cannot import mediapipe: {e}", file=sys.stderr)
        return NO_MEDIAPIPE_EXIT
    if len(argv) == 3 and argv[0] in ("crops", "images"):
        (_run_crops if argv[0] == "crops" else _run_images)(argv[1], argv[2])
        return 0
    if len(argv) in (2, 4) and argv[0] == "time":
        repeats = int(argv[3]) if len(argv) == 4 and argv[2] == "--repeats" else 30
        print(json.dumps(_time(argv[1], repeats)))  # the last stdout line is the answer
        return 0
    print(__doc__, file=sys.stderr)
    return 2


# ============================================================================== from the poselive side
def mediapipe_python() -> Path | None:
    """The interpreter that has mediapipe: $POSELIVE_MEDIAPIPE_PYTHON, else the repository's venv-mp; None when
    neither exists."""
    env = os.environ.get(PYTHON_ENV)
    path = Path(env) if env else REPO_VENV_PYTHON
    return path if path.is_file() else None


def require_mediapipe() -> Path:
    """mediapipe_python(), or PoseliveError (one line: what is missing and how to set it up)."""
    from poselive.errors import PoseliveError
    python = mediapipe_python()
    if python is None:
        where = os.environ.get(PYTHON_ENV) or REPO_VENV_PYTHON
        raise PoseliveError(f"MediaPipe is not installed ({where} not found); set it up with: {INSTALL_HINT}")
    return python


def _run_script(args: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    from poselive.errors import PoseliveError
    python = require_mediapipe()
    proc = subprocess.run([str(python), str(Path(__file__).resolve()), *args], capture_output=True, text=True,
                          timeout=timeout_s)
    if proc.returncode == NO_MEDIAPIPE_EXIT:
        raise PoseliveError(f"{python} cannot import mediapipe; set it up with: {INSTALL_HINT}")
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise PoseliveError(f"MediaPipe run failed (exit {proc.returncode}): {last}")
    return proc


def _poses_via_script(mode: str, input_name: str, write_input, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Hand the script its input through a temporary folder and read back (keypoints, found)."""
    with tempfile.TemporaryDirectory(prefix="poselive-mp-") as tmp:
        src, dst = Path(tmp) / input_name, Path(tmp) / "keypoints.npz"
        write_input(src)
        _run_script([mode, str(src), str(dst)], timeout_s=120 + 2.0 * count)
        with np.load(dst) as z:
            return z["keypoints"], z["found"]


def mediapipe_on_crops(crops_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BlazePose Full (static image mode) on each crop. crops_bgr: (N, H, W, 3) uint8 BGR.
    Returns keypoints (N, 17, 3): x, y in crop px (0-based pixel centres) and visibility, zeros where no
    person was found; and found (N,) bool. Raises PoseliveError (one line) when MediaPipe is missing."""
    crops_bgr = np.ascontiguousarray(crops_bgr, np.uint8)
    return _poses_via_script("crops", "crops.npz", lambda f: np.savez(f, crops=crops_bgr), len(crops_bgr))


def mediapipe_on_images(image_paths: list[str | os.PathLike]) -> tuple[np.ndarray, np.ndarray]:
    """BlazePose Full (static image mode) on whole images: its own detector finds at most one person each.
    Returns keypoints (N, 17, 3) in image px and visibility, zeros where no person was found (or the image
    could not be read); and found (N,) bool. Raises PoseliveError (one line) when MediaPipe is missing."""
    listing = "".join(f"{Path(p).resolve()}\n" for p in image_paths)
    return _poses_via_script("images", "images.txt", lambda f: f.write_text(listing, encoding="utf-8"),
                             len(image_paths))


def time_mediapipe(image_path: str | os.PathLike, repeats: int = 30) -> dict:
    """Median and p90 ms of BlazePose Full `process()` on one frame, tracking mode (static_image_mode=False),
    after 3 warm-up calls. Returns {"model", "mediapipe" (version), "image_wh", "repeats", "median_ms",
    "p90_ms", "found_fraction"}. Raises PoseliveError (one line) when MediaPipe is missing."""
    proc = _run_script(["time", str(image_path), "--repeats", str(int(repeats))], timeout_s=120 + 5.0 * repeats)
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(_script_main(sys.argv[1:]))
