"""`poselive` command line: argument parsing only. Each command hands its parsed arguments to the module that
does the work (imported lazily, so `poselive --help` stays fast)."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from poselive.errors import INSTALL_TORCH, PoseliveError
from poselive.weights import DEFAULT_DETECTOR


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's help ends with its default, where it has one to say (not for switches that are off and
    options that are unset by default)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "onnx", "cpu"],
                   help="where the networks run: auto (CUDA fp16 if torch sees a GPU, else ONNX Runtime, else "
                        "torch on the CPU), cuda and cpu (torch; need poselive[train]) or onnx")


def _det_tiles(p: argparse.ArgumentParser) -> None:
    p.add_argument("--det-tiles", action="store_true",
                   help="also look for people in the image's four corner tiles (finds smaller people; four "
                        "more detector passes at full size)")


def _max_megapixels(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-megapixels", type=float, metavar="MP",
                   help="skip images larger than this (default 50; 0: no limit); the size is read from the "
                        "file's header, before the image is decoded")


def _detector(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detector", default=DEFAULT_DETECTOR, help="person detector: a model name or weights file")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="poselive", description="Real-time body and face landmarks.",
                                 formatter_class=_HelpFormatter, epilog="Exit status: 0 done, 1 some videos of "
                                 "`track` failed, 2 an error (one line on stderr), 130 interrupted.")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND",
                            parser_class=lambda **kw: argparse.ArgumentParser(formatter_class=_HelpFormatter,
                                                                              **kw))

    p = sub.add_parser("demo", help="run the body pipeline on the bundled sample clip")
    p.add_argument("--out", default="poselive-demo", help="folder for the annotated MP4 and JSONL")
    p.add_argument("--show", action="store_true", help="also show a window")
    _device(p)
    p.set_defaults(target="poselive.app:demo_command")

    p = sub.add_parser("run", help="run the live pipeline on a camera, video, image folder or URL")
    p.add_argument("--source", default="0", help="camera index, video file, image folder, URL or 'synthetic'")
    p.add_argument("--task", default="body", help="comma list of body,face")
    p.add_argument("--show", action="store_true", help="open the window instead (record from there; --out and "
                   "--json apply without --show)")
    p.add_argument("--out", help="write the annotated video to this MP4")
    p.add_argument("--json", help="write one JSON line per frame to this file")
    p.add_argument("--heatmaps", action="store_true", help="blend the network's heatmaps over the frame")
    p.add_argument("--no-hud", action="store_true", help="leave the timing panel out of the --out video")
    p.add_argument("--no-smooth", action="store_true", help="turn the One Euro filter off")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    _max_megapixels(p)
    _device(p)
    p.set_defaults(target="poselive.app:run_command")

    p = sub.add_parser("track", help="track people through many videos, one JSONL per video")
    p.add_argument("inputs", nargs="+", help="video files or folders of videos")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--video", action="store_true", help="also write an annotated MP4 per video")
    p.add_argument("--redo", action="store_true", help="process videos whose output already exists")
    p.add_argument("--ray", nargs="?", const="local", help="run on Ray: no value starts a local Ray, "
                   "or give a cluster address")
    _device(p)
    p.set_defaults(target="poselive.batch:track_command")

    p = sub.add_parser("gui", help="open the PyQt5 window")
    p.add_argument("--source", default=None, help="start with this source")
    _device(p)
    p.set_defaults(target="poselive.gui.window:gui_command")

    p = sub.add_parser("cameras", help="list the cameras OpenCV can open")
    p.add_argument("--max-index", type=int, default=8, help="try camera indices 0 up to this one")
    p.set_defaults(target="poselive.sources:cameras_command")

    p = sub.add_parser("serve", help="publish a live skeleton stream (UDP / WebSocket / OSC)")
    p.add_argument("--source", default="0", help="camera index, video file (played in real time), image folder, "
                   "URL or 'synthetic'")
    p.add_argument("--udp", help="HOST:PORT to send JSON datagrams to")
    p.add_argument("--ws", help="HOST:PORT to serve WebSocket clients on (127.0.0.1:8765 when no output is given)")
    p.add_argument("--osc", help="HOST:PORT to send OSC messages to")
    p.add_argument("--allow-remote", action="store_true", help="allow binding to or sending to a non-loopback "
                   "address; a WebSocket server on one then asks clients for a token (?token=, printed at start)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="also let web pages from this origin (e.g. https://my.site) connect to the WebSocket "
                        "server; repeat for several (local pages and non-browser clients always may)")
    p.add_argument("--task", default="body", help="comma list of body,face")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    _device(p)
    p.set_defaults(target="poselive.publish.server:serve_command")

    p = sub.add_parser("bench", help="time every stage on every backend available here")
    p.add_argument("--model", default="body-lite", help="model name or weights file")
    p.add_argument("--pipeline", metavar="SOURCE", nargs="+", help="also time the whole pipeline on these sources "
                   "(videos, folders, images, 'synthetic')")
    p.add_argument("--frames", type=int, default=100, help="frames per pipeline source")
    p.add_argument("--repeats", type=int, default=50, help="timed runs per measurement")
    p.add_argument("--mediapipe", action="store_true", help="time MediaPipe BlazePose side by side if installed")
    p.add_argument("--face", action="store_true", help="time face landmarks + head pose for one face (and dlib's "
                   "predictor if installed), and the live face stage on the close-up clip against body only")
    p.add_argument("--face-device", default="onnx", help="backend for the face timing")
    p.add_argument("--stream", action="store_true", help="time the skeleton stream's cost with 3 WebSocket clients, "
                   "and while clients misbehave")
    p.add_argument("--gui", action="store_true", help="time the window: frames shown while the models load, and "
                   "closing it while a source plays")
    p.add_argument("--cluster", action="store_true", help="time batch tracking locally vs on a local Ray with 2 "
                   "workers (needs poselive[cluster]; a few minutes)")
    p.set_defaults(target="poselive.bench:bench_command")

    p = sub.add_parser("export-onnx", help="export weights to ONNX (dynamic batch, height, width), with the "
                       "config, keypoint schema and model name as metadata (needs poselive[train])")
    p.add_argument("weights", help="a poselive .pt weights file")
    p.add_argument("out", help="the .onnx file to write")
    p.add_argument("--metadata-only", action="store_true", help="OUT exists: only (re)write its metadata from "
                   "WEIGHTS, leaving its graph and weights as they are")
    p.set_defaults(target="poselive.backends:export_command")

    p = sub.add_parser("train", help="train a model (resumable; needs poselive[train])")
    p.add_argument("config", help="body-lite, body-full, face-lite, ...")
    p.add_argument("--out", help="run folder (when not given: runs/CONFIG)")
    p.add_argument("--minutes", type=float, help="stop after this many minutes")
    p.add_argument("--steps", type=int, help="stop after this many steps")
    p.add_argument("--no-resume", action="store_true", help="start over even if the run folder has last.pt")
    p.add_argument("--data", help="shared data folder (when not given: $POSELIVE_DATA, else ../shared/data)")
    p.add_argument("--batch", type=int, default=32, help="crops per training step")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of the cosine schedule")
    p.add_argument("--total-steps", type=int, default=60000, help="length of the cosine learning-rate schedule "
                   "(a shorter one anneals sooner; raising it later restarts warm)")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"],
                   help="where to train: auto (cuda if torch sees a GPU, else cpu), cuda or cpu")
    p.add_argument("--start-from", help="a new run begins from this model's training state (a name, e.g. body-det, "
                   "or a .pt file) grown to the config's stack count, instead of from scratch")
    p.add_argument("--ship", action="store_true", help="instead of training, copy the run's best weights into "
                   "models/ (float16 .pt + .onnx) and its training state into models/checkpoints/")
    p.add_argument("--average", nargs="+", metavar="STATE", help="with --ship: ship the mean of these saved "
                   "training states' weights (e.g. the last few of a schedule) instead of the best")
    p.set_defaults(target="poselive.train.run:train_command")

    p = sub.add_parser("eval", help="score a model on COCO keypoint json + images, or on .pts face folders; "
                       "score person finding on MOT ground truth (track) or on photos of nobody (empty)")
    p.add_argument("inputs", nargs="*", help="track: the video (or a JSONL poselive wrote) to score; empty: "
                   "folders or photos with nobody in them (default: the held-out photos of negatives/scene15)")
    p.add_argument("--task", default="body", choices=["body", "face", "track", "empty", "thresholds"],
                   help="body / face: keypoints against labels; track: MOTA, IDF1 against MOT ground truth; "
                   "empty: people reported on photos of nobody; thresholds: the precision/recall table over "
                   "detector and person-score thresholds (validation split plus empty photos)")
    p.add_argument("--gt", help="track: MOT ground truth gt.txt (frame,id,x,y,w,h,conf,...; frame 1 = video "
                   "frame 0)")
    p.add_argument("--repeats", type=int, default=0, metavar="N", help="track: also run the video N more times, "
                   "each frame with one grey level of seeded noise, and report every run and the median (one run "
                   "of a tracker moves by several points of MOTA and IDF1 with such noise)")
    p.add_argument("--modes", default="predict,live", help="empty, thresholds: predict (still photos, as "
                   "`poselive predict`), live (the live pipeline: for empty, each photo a short still clip), or both")
    p.add_argument("--data", nargs="+", help="COCO json files (body) or .pts folders (face); when not given: "
                   "our validation split")
    p.add_argument("--model", default=None, help="model name or weights file (when not given: body-lite-160 for "
                   "photos, body-lite for --task track / empty live, face-lite for --task face)")
    p.add_argument("--compare", nargs="+", metavar="MODEL", help="face: also score these models (names or weights "
                   "files) in the same table")
    p.add_argument("--trees", nargs="+", metavar="TREES", help="face: regression trees to score after the first "
                   "model's look (names or .npz files; when not given: face-full, as predict runs it)")
    p.add_argument("--detections", action="store_true", help="also score with the model's own detections")
    p.add_argument("--det-size", type=int, default=256, help="letterbox side for the person detector (larger "
                   "finds smaller people)")
    p.add_argument("--det-threshold", type=float, default=0.25, help="person-centre score a detection needs "
                   "(the default is PoseEstimator's: see `poselive eval --task thresholds`)")
    _detector(p)
    _det_tiles(p)
    p.add_argument("--baseline", action="store_true", help="also run MediaPipe (body) / dlib (face) if installed")
    p.add_argument("--out", help="write the metrics (and CED plot for faces) here")
    _device(p)
    p.set_defaults(target="poselive.train.evaluate:eval_command")

    p = sub.add_parser("predict", help="keypoints for images, written as COCO results json")
    p.add_argument("images", nargs="+", help="image files or folders of images")
    p.add_argument("--task", default="body", choices=["body", "face"], help="bodies (COCO-17 keypoints) or "
                   "faces (68 landmarks and head pose)")
    p.add_argument("--boxes", help="json: {file_name: [[x, y, w, h], ...]} boxes to use instead of detection")
    p.add_argument("--out", required=True, help="results json")
    _detector(p)
    _det_tiles(p)
    p.add_argument("--render", metavar="DIR", help="also write each image with what was found drawn on it, "
                   "as DIR/<image stem>.jpg")
    p.add_argument("--model", default=None, help="model name or weights file (when not given: body-lite-160, or "
                   "face-lite for --task face)")
    _max_megapixels(p)
    _device(p)
    p.set_defaults(target="poselive.predict:predict_command")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    module, func = args.target.split(":")
    try:
        return int(getattr(importlib.import_module(module), func)(args) or 0)
    except PoseliveError as e:
        print(f"poselive: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in ("torch", "onnx"):
            raise
        # Training, export and the torch backends need the train extra; the runtime itself does not.
        print(f"poselive: error: `poselive {args.command}` needs {e.name.split('.')[0]}, which is not installed; "
              f"{INSTALL_TORCH}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("poselive: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
