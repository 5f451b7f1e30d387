"""Where shipped weights live, and how a model name becomes a file.

Names resolve to `<models dir>/<name>.pt`; the models dir is $POSELIVE_MODELS if set, else the repository's
top-level models/ folder. A path to an existing file is used as it is."""
from __future__ import annotations

import os
from pathlib import Path

from poselive.errors import WeightsError

REPO_MODELS = Path(__file__).resolve().parents[1] / "models"
# The person finder used where none is named (PoseEstimator, and eval / predict --detector).
DEFAULT_DETECTOR = "body-det-2"


def models_dir() -> Path:
    return Path(os.environ["POSELIVE_MODELS"]) if os.environ.get("POSELIVE_MODELS") else REPO_MODELS


def training_state(name: str) -> Path:
    """The committed training state of model `name` (weights + optimizer + step), from which training resumes."""
    return REPO_MODELS / "checkpoints" / f"{name}-last.pt"


def resolve_weights(name_or_path: str | os.PathLike) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".pt", ".onnx") or p.exists():
        if not p.exists():
            raise WeightsError(f"weights file {p} does not exist")
        return p
    candidate = models_dir() / f"{name_or_path}.pt"
    if not candidate.exists():
        raise WeightsError(f"no shipped weights for model {name_or_path!r} (looked for {candidate}); "
                           f"train it with `poselive train {name_or_path}` or pass a weights file")
    return candidate
