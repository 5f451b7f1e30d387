"""Where frames come from: camera, video file, image folder, stream URL or a synthetic scene; and the
latest-frame capture thread that sits between a live source and the pipeline.

`open_source(spec)` turns the string a person types into a source:
    "0", "1:v4l2", "0:dshow"    camera index, optionally with an OpenCV backend (see CAMERA_BACKENDS)
    "clip.mp4"                  a video file
    "photos/", "photo.jpg"      a folder of images (natural sort order) or a single image
    "rtsp://...", "http://..."  a network stream, read through cv2.VideoCapture
    "synthetic", "synthetic:N"  generated frames (walking stick figures and moving shapes), N frames
Every source is an iterable of `poselive.records.Frame` (image (H, W, 3) uint8 BGR, index, capture_time =
time.monotonic() at grab, video_time in seconds) and a context manager; iterate it once.

Files and folders yield every frame as fast as the consumer takes them, unless `realtime=True` paces them at
their frame rate. Cameras and streams are live: wrap them in `LatestFrameGrabber`, which reads on its own
thread and keeps only the newest frame, so a slow pipeline shows the present instead of a growing backlog.
A live source that stops delivering (cable pulled, stream dropped) is reopened with exponential back-off;
its `status` says so in words the app can show.

    base.py       FrameSource, SourceStatus, RetryPolicy, real-time pacing
    files.py      video files and image folders; read_image
    live.py       cameras and network streams (reopened with back-off); `poselive cameras`
    synthetic.py  generated walkers with their true keypoints
    grabber.py    LatestFrameGrabber, the one-slot latest-frame queue
    open.py       open_source: the typed spec -> a source
"""
from __future__ import annotations

from poselive.sources.base import DEFAULT_FPS, FrameSource, RetryPolicy, SourceStatus
from poselive.sources.files import (IMAGE_EXTENSIONS, ImageSequenceSource, VideoFileSource, list_images,
                                    read_image)
from poselive.sources.grabber import LatestFrameGrabber
from poselive.sources.live import (CAMERA_BACKENDS, CameraInfo, LiveCaptureSource, cameras_command, open_camera,
                                   open_stream, probe_cameras)
from poselive.sources.open import open_source, source_path
from poselive.sources.synthetic import SyntheticSource

__all__ = ["CAMERA_BACKENDS", "DEFAULT_FPS", "IMAGE_EXTENSIONS", "CameraInfo", "FrameSource", "ImageSequenceSource",
           "LatestFrameGrabber", "LiveCaptureSource", "RetryPolicy", "SourceStatus", "SyntheticSource",
           "VideoFileSource", "cameras_command", "list_images", "open_camera", "open_source", "open_stream",
           "probe_cameras", "read_image", "source_path"]
