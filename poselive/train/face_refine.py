"""Training face-full's refining network (poselive.face_refine): `poselive train face-full-refine [--ship]`.

Data: the clean human-labelled 300-W training faces and their mirrors (as face-full's trees). Each step shakes
each face's labelled landmarks as the trees err: the whole shape turned (3 degrees), scaled (3%) and moved
(2.5% of the eye distance), then each point moved on its own (3% of the eye distance, 5% on the jaw, times a
per-face factor from 0.3 to 1.5), and the light changed. The network sees the patches around the shaken
points (face_refine.patch_input, the very function the runtime calls) and learns the offsets back to the
labels, with an L1 loss. The trees' own errors on their training faces would be too small to learn from: the
trees have seen those faces.

A run saves its state every epoch and resumes from it; about 100 s an epoch on 2 CPU cores.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from poselive.errors import PoseliveError
from poselive.face_refine import NUM_LANDMARKS, OFFSET_UNIT_PX, PATCH_PX, patch_input
from poselive.face_shape import JAW
from poselive.transforms import apply_matrix, invert_matrix

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefineTrainConfig:
    widths: tuple[int, int, int] = (24, 48, 96)  # the trunk's channels at 16, 8 and 4 px
    features: int = 256                          # what the trunk hands each landmark's own head
    epochs: int = 40
    batch: int = 32                              # faces a step (68 patches each)
    lr: float = 2e-3                             # peak of a one-cycle schedule
    weight_decay: float = 1e-4
    turn_sigma_deg: float = 3.0
    scale_sigma: float = 0.03
    shift_sigma: float = 0.025                   # of the eye distance (outer corners)
    point_sigma: float = 0.03                    # of the eye distance
    jaw_point_sigma: float = 0.05
    seed: int = 0


# face-full-refine as shipped (see its model card).
SHIPPED_CONFIG = RefineTrainConfig()


def make_network(cfg: RefineTrainConfig):
    """The torch network: (N, 68, 2, P, P) patches -> (N, 68, 2) offsets in OFFSET_UNIT_PX canvas px."""
    import torch
    from torch import nn

    a, b, c = cfg.widths

    def conv(i, o, stride=1):
        return [nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

    class PatchNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(*conv(2, a, 2), *conv(a, b), *conv(b, b, 2), *conv(b, c), *conv(c, c, 2),
                                       nn.Flatten(), nn.Linear(c * (PATCH_PX // 8) ** 2, cfg.features),
                                       nn.ReLU(inplace=True))
            # One head per landmark: an eye corner and a jaw point need different readings of the same trunk.
            self.head = nn.Parameter(torch.randn(NUM_LANDMARKS, cfg.features, 2) * 0.01)
            self.bias = nn.Parameter(torch.zeros(NUM_LANDMARKS, 2))

        def forward(self, x):
            n = x.shape[0]
            f = self.trunk(x.reshape(n * NUM_LANDMARKS, 2, PATCH_PX, PATCH_PX)).reshape(n, NUM_LANDMARKS, -1)
            return torch.einsum("nkf,kfo->nko", f, self.head) + self.bias

    return PatchNet()


def shaken(xy: np.ndarray, cfg: RefineTrainConfig, rng: np.random.Generator) -> np.ndarray:
    """Landmarks (68, 2) moved as the trees' are off the labels (see the module docstring)."""
    eye_distance = np.linalg.norm(xy[36] - xy[45])
    mid = xy.mean(0)
    a = np.radians(rng.normal(0, cfg.turn_sigma_deg))
    turn = np.exp(rng.normal(0, cfg.scale_sigma)) * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    out = (xy - mid) @ turn.T + mid + rng.normal(0, cfg.shift_sigma, 2) * eye_distance
    sigma = np.full(len(xy), cfg.point_sigma)
    sigma[JAW] = cfg.jaw_point_sigma
    return out + rng.normal(0, 1, xy.shape) * (sigma[:, None] * eye_distance * rng.uniform(0.3, 1.5))


def relit(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2
    g = gray.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-30, 30)
    if rng.random() < 0.3:
        g = cv2.GaussianBlur(g, (0, 0), rng.uniform(0.5, 1.5))
    return np.clip(g, 0, 255).astype(np.uint8)


def training_batch(faces, cfg: RefineTrainConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(patches (N, 68, 2, P, P) float32, target offsets (N, 68, 2) float32 in OFFSET_UNIT_PX)."""
    x, y = [], []
    for gray, xy in faces:
        inp = patch_input(relit(gray, rng), shaken(xy, cfg, rng))
        x.append(inp.patches)
        y.append((apply_matrix(invert_matrix(inp.canvas_to_image), xy) - inp.centres) / OFFSET_UNIT_PX)
    return np.array(x, np.float32), np.array(y, np.float32)


def train_refiner(faces, cfg: RefineTrainConfig, out: Path, val=None, progress=print):
    """Train (resuming from out/last.pt when it is this config's) and return the torch network. val: optional
    (grey images, starting landmarks (N, 68, 2), labels (N, 68, 2)) scored each epoch (NME, for the log)."""
    import torch

    from poselive.face_metrics import nme
    torch.manual_seed(cfg.seed)
    net = make_network(cfg)
    opt = torch.optim.AdamW(net.parameters(), cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = len(faces) // cfg.batch
    if per_epoch == 0:
        raise PoseliveError(f"{len(faces)} training faces are fewer than one batch of {cfg.batch}")
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * per_epoch, pct_start=0.1)
    rng = np.random.default_rng(cfg.seed)
    state_path = out / "last.pt"
    start = 0
    if state_path.exists():
        state = torch.load(state_path, weights_only=False)
        if state["config"] == asdict(cfg):
            net.load_state_dict(state["net"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            rng.bit_generator.state = state["rng"]
            start = state["epoch"]
            log.info("resuming %s at epoch %d", state_path, start)
        else:
            log.warning("%s was trained with another config; starting over", state_path)
    for epoch in range(start, cfg.epochs):
        t0 = time.time()
        net.train()
        order = rng.permutation(len(faces))
        total = 0.0
        for i in range(per_epoch):
            x, y = training_batch([faces[j] for j in order[i * cfg.batch:(i + 1) * cfg.batch]], cfg, rng)
            loss = (net(torch.from_numpy(x)) - torch.from_numpy(y)).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        line = f"epoch {epoch + 1}/{cfg.epochs}: loss {total / per_epoch:.4f}"
        if val is not None:
            net.eval()
            refined = refine_with_torch(net, val[0], val[1])
            line += f", validation NME {100 * nme(refined, val[2]).mean():.2f}%"
        progress(f"{line} ({time.time() - t0:.0f} s)")
        torch.save({"config": asdict(cfg), "net": net.state_dict(), "opt": opt.state_dict(),
                    "sched": sched.state_dict(), "rng": rng.bit_generator.state, "epoch": epoch + 1}, state_path)
    net.eval()
    return net


def refine_with_torch(net, grays, starts) -> np.ndarray:
    """The runtime's refine, with the torch network: (N, 68, 2) image px."""
    import torch

    from poselive.face_refine import landmarks_from_offsets
    out = []
    with torch.no_grad():
        for gray, start in zip(grays, starts):
            inp = patch_input(gray, start)
            out.append(landmarks_from_offsets(inp, net(torch.from_numpy(inp.patches[None]))[0].numpy()))
    return np.array(out)


def export_refiner(net, path: Path) -> None:
    """The network as an ONNX file: patches (faces, 68, 2, P, P) -> offsets (faces, 68, 2); written whole or not
    at all (a stopped export leaves no half file to ship)."""
    import os
    import warnings

    import torch

    from poselive.backends import ONNX_OPSET
    tmp = path.with_suffix(".onnx.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(net, (torch.zeros(1, NUM_LANDMARKS, 2, PATCH_PX, PATCH_PX),), str(tmp), dynamo=False,
                              opset_version=ONNX_OPSET, input_names=["patches"], output_names=["offsets"],
                              dynamic_axes={"patches": {0: "faces"}, "offsets": {0: "faces"}})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def validation_starts(records) -> tuple[list, np.ndarray, np.ndarray]:
    """The held-out faces as the runtime meets them: (grey images, face-full's trees' landmarks from face-lite's
    look in the landmark box, labels)."""
    import cv2

    from poselive.face_estimator import FaceEstimator
    estimator = FaceEstimator("face-lite", device="onnx", fit_pose=False, refiner=None)
    grays, starts, labels = [], [], []
    for r in records:
        image = cv2.imread(r.image_path, cv2.IMREAD_COLOR)
        if image is None:
            continue
        grays.append(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        starts.append(estimator.estimate(image, np.array([r.box_xywh], np.float64))[0].landmarks[:, :2])
        labels.append(np.asarray(r.keypoints, np.float64)[:, :2])
    return grays, np.array(starts), np.array(labels)


def train_command(args) -> int:
    """`poselive train face-full-refine [--out RUN] [--ship]`: RUN/face-full-refine.onnx from the 300-W training
    faces (about an hour on 2 cores, resumable); --ship copies it into models/."""
    from poselive.train.face_data import face_records, grey_faces_and_mirrors, split_of_face
    from poselive.weights import FACE_REFINE, ship_file
    out = Path(args.out or f"runs/{FACE_REFINE}")
    trained = out / f"{FACE_REFINE}.onnx"
    if args.ship:
        ship_file(trained)
        return 0
    records = [r for r in face_records(Path(args.data) if args.data else None) if r.dataset != "ytf68"]
    train = [r for r in records if split_of_face(r) == "train"]
    if not train:
        raise PoseliveError("no 300-W training faces found; set POSELIVE_DATA to the shared data folder")
    cfg = SHIPPED_CONFIG
    out.mkdir(parents=True, exist_ok=True)
    val = validation_starts([r for r in records if split_of_face(r) == "val"])
    net = train_refiner(grey_faces_and_mirrors(train), cfg, out, val=val)
    export_refiner(net, trained)
    print(f"{FACE_REFINE}: {len(train)} faces, {cfg.epochs} epochs; written to {trained}")
    return 0
