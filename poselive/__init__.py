"""poselive: real-time body and face landmarks from a webcam or video.

Heavy modules load only when needed, so `import poselive` stays light: onnxruntime when a model is built, torch
only for training, export and the torch backends (`pip install poselive[train]`)."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["PoseEstimator", "FaceEstimator", "stream", "GestureDetector", "Person", "Face", "Frame", "HeadPose"]


def __getattr__(name):
    if name == "PoseEstimator":
        from poselive.estimator import PoseEstimator
        return PoseEstimator
    if name == "FaceEstimator":
        from poselive.face_estimator import FaceEstimator
        return FaceEstimator
    if name == "stream":  # for live in poselive.stream(source): ... (the network publisher is poselive.publish)
        from poselive.live import stream
        return stream
    if name == "GestureDetector":
        from poselive.gestures import GestureDetector
        return GestureDetector
    if name in ("Person", "Face", "Frame", "HeadPose"):
        from poselive import records
        return getattr(records, name)
    raise AttributeError(f"module 'poselive' has no attribute {name!r}")
