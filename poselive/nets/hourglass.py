"""The stacked hourglass (Newell et al. 2016): N encoder-decoders in a row, each ending in a heatmap head.

Each hourglass halves the resolution `depth` times (deep features say *what*), then doubles it back, adding
the skip branch kept at every level (shallow features say *where*). Every stack's heatmaps are supervised
(intermediate supervision) and remapped into the next stack's input. Output stride is 4.

Fully convolutional: the input is zero-padded at the bottom/right to a multiple of 4 * 2**depth and the
heatmaps cropped back to ceil(H/4) x ceil(W/4). Padding only at the far edges keeps the codec's coordinate
convention intact.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from poselive.nets.configs import NetConfig


def conv_bn_relu(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Bottleneck(nn.Module):
    """Residual bottleneck (1x1 -> 3x3 -> 1x1), the original hourglass block: accurate, heavier."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        mid = max(cout // 2, 8)
        self.body = nn.Sequential(conv_bn_relu(cin, mid), conv_bn_relu(mid, mid, 3),
                                  nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.proj = None if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        skip = x if self.proj is None else self.proj(x)
        return F.relu(self.body(x) + skip)


class InvertedResidual(nn.Module):
    """MobileNetV2 block (1x1 expand -> depthwise 3x3 -> 1x1 project): cheap enough for CPU real time."""

    def __init__(self, cin: int, cout: int, expansion: int = 2):
        super().__init__()
        mid = cin * expansion
        self.body = nn.Sequential(conv_bn_relu(cin, mid), conv_bn_relu(mid, mid, 3, groups=mid),
                                  nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.proj = None if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        skip = x if self.proj is None else self.proj(x)
        return self.body(x) + skip


def make_blocks(cfg: NetConfig, cin: int, cout: int, n: int) -> nn.Sequential:
    def one(i: int, o: int) -> nn.Module:
        return Bottleneck(i, o) if cfg.block == "bottleneck" else InvertedResidual(i, o, cfg.expansion)
    return nn.Sequential(*[one(cin if i == 0 else cout, cout) for i in range(n)])


class Hourglass(nn.Module):
    """One encoder-decoder, written recursively: skip branch + (down -> inner -> up) at each level."""

    def __init__(self, cfg: NetConfig, depth: int, ch: int):
        super().__init__()
        n = cfg.blocks_per_level
        self.skip = make_blocks(cfg, ch, ch, n)
        self.enc = make_blocks(cfg, ch, ch, n)
        self.inner = Hourglass(cfg, depth - 1, ch) if depth > 1 else make_blocks(cfg, ch, ch, n)
        self.dec = make_blocks(cfg, ch, ch, n)

    def forward(self, x):
        y = self.enc(F.max_pool2d(x, 2))
        y = self.dec(self.inner(y))
        return self.skip(x) + F.interpolate(y, scale_factor=2.0, mode="nearest")


class StackedHourglass(nn.Module):
    """Image (N, 3, H, W), normalised RGB -> heatmaps (N, K, ceil(H/4), ceil(W/4)), heatmap px."""

    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        w, k = cfg.width, cfg.num_outputs
        # Stem to stride 4: a strided 3x3 conv, one block, a max-pool.
        self.stem = nn.Sequential(conv_bn_relu(3, cfg.stem_width, 3, stride=2),
                                  make_blocks(cfg, cfg.stem_width, w, 1), nn.MaxPool2d(2),
                                  make_blocks(cfg, w, w, 1))
        self.hourglasses = nn.ModuleList(Hourglass(cfg, cfg.depth, w) for _ in range(cfg.stacks))
        self.features = nn.ModuleList(nn.Sequential(make_blocks(cfg, w, w, 1), conv_bn_relu(w, w))
                                      for _ in range(cfg.stacks))
        self.heads = nn.ModuleList(nn.Conv2d(w, k, 1) for _ in range(cfg.stacks))
        self.remap_features = nn.ModuleList(nn.Conv2d(w, w, 1) for _ in range(cfg.stacks - 1))
        self.remap_heatmaps = nn.ModuleList(nn.Conv2d(k, w, 1) for _ in range(cfg.stacks - 1))

    @property
    def multiple(self) -> int:
        return 4 * 2 ** self.cfg.depth

    def forward_stacks(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Heatmaps of every stack (for intermediate supervision), each (N, K, ceil(H/4), ceil(W/4))."""
        h, w = x.shape[-2], x.shape[-1]
        m = self.multiple
        x = F.pad(x, (0, (m - w % m) % m, 0, (m - h % m) % m))
        oh, ow = (h + 3) // 4, (w + 3) // 4
        x = self.stem(x)
        outs = []
        for i in range(self.cfg.stacks):
            f = self.features[i](self.hourglasses[i](x))
            hm = self.heads[i](f)
            outs.append(hm[..., :oh, :ow])
            if i < self.cfg.stacks - 1:
                x = x + self.remap_features[i](f) + self.remap_heatmaps[i](hm)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_stacks(x)[-1]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
