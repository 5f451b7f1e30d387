"""Named model sizes as plain dataclasses. A checkpoint stores its NetConfig as a dict, so a file carries
everything needed to rebuild its network."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from poselive.schemas import schema_by_name


@dataclass(frozen=True)
class NetConfig:
    name: str
    schema: str                    # keypoint schema name (poselive.schemas)
    input_wh: tuple[int, int]      # the crop size the model is trained and benchmarked at (any size runs)
    stacks: int = 2
    depth: int = 3                 # halvings inside each hourglass
    width: int = 64
    stem_width: int = 32
    block: str = "inverted"        # "inverted" (depthwise, CPU) or "bottleneck" (residual, GPU)
    expansion: int = 2             # inverted-residual expansion
    blocks_per_level: int = 1
    sigma: float = 2.0             # target Gaussian, heatmap px
    blur_sigma: float = 1.5        # DARK modulation, heatmap px
    extra_outputs: int = 0         # channels after the keypoint heatmaps (e.g. a detector's size maps)

    def __post_init__(self):
        """Every field within RANGES: a checkpoint's config builds its network before the weights are matched
        to it, so a file claiming width 200000 would otherwise try to allocate hundreds of GB."""
        if not (isinstance(self.input_wh, tuple) and len(self.input_wh) == 2):
            raise ValueError(f"config field input_wh = {self.input_wh!r} is not a (width, height) pair")
        for name, (lo, hi) in RANGES.items():
            value = getattr(self, name)
            kinds = (int, float) if isinstance(lo, float) else (int,)
            for v in value if name == "input_wh" else (value,):
                if isinstance(v, bool) or not isinstance(v, kinds) or not lo <= v <= hi:
                    raise ValueError(f"config field {name} = {value!r} is not a number from {lo:g} to {hi:g}")
        if self.block not in ("inverted", "bottleneck"):
            raise ValueError(f"config field block = {self.block!r} is neither 'inverted' nor 'bottleneck'")
        schema_by_name(self.schema)  # an unknown schema raises here, naming it

    @property
    def num_keypoints(self) -> int:
        return schema_by_name(self.schema).num_keypoints

    @property
    def num_outputs(self) -> int:
        return self.num_keypoints + self.extra_outputs

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_wh"] = list(self.input_wh)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "NetConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config fields {sorted(unknown)}")
        d = dict(d)
        d["input_wh"] = tuple(d["input_wh"])
        return cls(**d)


# What a config may ask for, field by field (input_wh per side): room above the largest shipped model
# (body-full: width 192, 4 stacks, depth 4), while the largest network these allow has 0.68 GB of float32
# weights (inverted blocks at every maximum; measured on torch's meta device).
RANGES: dict[str, tuple] = {
    "input_wh": (8, 4096), "stacks": (1, 8), "depth": (1, 6), "width": (8, 256), "stem_width": (8, 128),
    "expansion": (1, 4), "blocks_per_level": (1, 2), "sigma": (0.1, 16.0), "blur_sigma": (0.0, 16.0),
    "extra_outputs": (0, 16),
}

# body-lite: dense residual blocks train ~2x faster than depthwise ones on a 2-core CPU at the same latency,
# and a 128x96 crop keeps a heatmap of 32x24, enough for DARK to place joints well inside OKS tolerances.
BODY_LITE = NetConfig("body-lite", "coco17", (96, 128), stacks=2, depth=3, width=96, stem_width=32,
                      block="bottleneck")
# body-lite-160: body-lite's weights fine-tuned on 160x120 crops (heatmaps 40x30; the network is fully
# convolutional, so the same weights carry over). Joints land more precisely on still photos (OKS AP), for 1.4x
# the network time; its scores run lower on small people in crowds, so the live pipeline keeps body-lite.
BODY_LITE_160 = replace(BODY_LITE, name="body-lite-160", input_wh=(120, 160))
BODY_FULL = NetConfig("body-full", "coco17", (192, 256), stacks=4, depth=4, width=192, stem_width=64,
                      block="bottleneck")
# face-lite: dense residual blocks too: 0.96 s per batch of 32 against 2.1 s for the depthwise version on one
# core, so a CPU session gets twice the steps; at 128x128 the 32x32 heatmaps keep DARK well under 1 px.
FACE_LITE = NetConfig("face-lite", "face68", (128, 128), stacks=2, depth=3, width=64, stem_width=32,
                      block="bottleneck")

# body-det: finds people in a whole (letterboxed) frame: channel 0 is a person-centre heatmap (logits),
# channels 1-2 the log of the box width and height in heatmap px at each centre. One stack, one more halving
# for a wider view.
BODY_DET = NetConfig("body-det", "person_centre", (192, 192), stacks=1, depth=4, width=64, stem_width=32,
                     block="bottleneck", extra_outputs=2)

# body-det-2: body-det with a second stack that refines the first's centres and sizes, begun from body-det's
# trained weights (poselive.train.warm_start: `poselive train body-det-2 --start-from body-det`).
BODY_DET_2 = replace(BODY_DET, name="body-det-2", stacks=2)

# body-det-3: body-det-2's network, trained on from its weights with photos of nobody (15-Scene) and rounds of
# hard-negative mining, small street pedestrians (CityPersons) and grey positives: it tells a person from a
# lamp post, a window or a cushion (`poselive train body-det-3 --start-from body-det-2`).
BODY_DET_3 = replace(BODY_DET_2, name="body-det-3")

CONFIGS = {c.name: c for c in (BODY_LITE, BODY_LITE_160, BODY_FULL, FACE_LITE, BODY_DET, BODY_DET_2, BODY_DET_3)}


def config_by_name(name: str) -> NetConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown model config {name!r}; known: {', '.join(CONFIGS)}") from None
