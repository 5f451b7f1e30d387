"""Where shipped weights live, and how a model name becomes a file.

Names resolve to `<models dir>/<name>.pt`, or `<name>.onnx` where only that is shipped (or `<name>.npz` for
face-full's regression trees, poselive.face_trees); the models dir is
$POSELIVE_MODELS if set, else the models/ folder the package ships with (`shipped_path`). A path to an existing
file is used as it is."""
from __future__ import annotations

import os
from pathlib import Path

from poselive.errors import WeightsError

REPO = Path(__file__).resolve().parents[1]
REPO_MODELS = REPO / "models"
# An install from a wheel has no checkout beside it: setup.py copies models/ and the demo clip in here.
PACKAGED = Path(__file__).resolve().parent / "_shipped"
# The person finder used where none is named (PoseEstimator, and eval / predict --detector).
DEFAULT_DETECTOR = "body-det-3"
# face-full, in three files: the regression trees that place the 68 face landmarks after face-lite's look
# (poselive.face_trees; NME 4.29% against face-lite's 5.43% on the held-out 300-W faces), which still photos and
# the live FaceStage use; the patch network that moves each landmark the trees placed (poselive.face_refine;
# 3.74% after the trees, with the mirror image) and the shape model that then slides jaw and brow points along
# their lines (poselive.face_shape; 3.63%), which still photos use.
FACE_TREES = "face-full"
FACE_REFINE = "face-full-refine"
FACE_SHAPE = "face-shape"
# The keypoint model for still photos (PoseEstimator, predict, eval): body-lite-160 places joints more precisely
# than body-lite (OKS AP with own detections 0.472 against 0.439 on our validation split) for 1.4x the network
# time, which a photo can afford. The live pipeline keeps body-lite (poselive.app).
STILL_MODEL = "body-lite-160"


def shipped_path(relative: str) -> Path:
    """A file or folder the project ships, e.g. "models" or "demos/vtest_short.mp4": inside the installed
    package when it came from a wheel, else in the checkout."""
    packaged = PACKAGED / relative
    return packaged if packaged.exists() else REPO / relative


def models_dir() -> Path:
    return Path(os.environ["POSELIVE_MODELS"]) if os.environ.get("POSELIVE_MODELS") else shipped_path("models")


def training_state(name: str) -> Path:
    """The committed training state of model `name` (weights + optimizer + step), from which training resumes."""
    return REPO_MODELS / "checkpoints" / f"{name}-last.pt"


def resolve_weights(name_or_path: str | os.PathLike) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".pt", ".onnx", ".npz") or p.exists():
        if not p.exists():
            raise WeightsError(f"weights file {p} does not exist")
        return p
    folder = models_dir()
    for candidate in (folder / f"{name_or_path}.pt", folder / f"{name_or_path}.onnx", folder / f"{name_or_path}.npz"):
        if candidate.exists():
            return candidate
    raise WeightsError(f"no shipped weights for model {name_or_path!r} (looked for {candidate.with_suffix('.pt')} "
                       f"and .onnx); train it with `poselive train {name_or_path}` or pass a weights file")


def ship_file(trained: Path) -> Path:
    """Copy a finished run's model file (face-full's trees, its refining network) into the models dir, under its
    own name; WeightsError when the run has not written it."""
    import shutil
    if not trained.exists():
        raise WeightsError(f"nothing to ship: {trained} does not exist; train it first")
    shipped = models_dir() / trained.name
    shutil.copyfile(trained, shipped)
    print(f"shipped {shipped} ({shipped.stat().st_size / 1e6:.1f} MB)")
    return shipped
