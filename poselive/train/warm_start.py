"""Warm start: begin a network with more stacks from a trained one with fewer, without changing its output.

The new stacks are copies of the trained last stack, and the remap convolutions that feed a stack's features
and heatmaps into the next one start at zero. So each new stack first sees exactly what the old last stack saw
(the stem features) and says exactly what it said: the grown network's output equals the trained one's at step
0, and training can only add to it. That matters on a 2-core CPU, where a new stack trained from scratch would
take hours just to catch up with the old one."""
from __future__ import annotations

from dataclasses import replace

import torch

from poselive.errors import PoseliveError
from poselive.nets.configs import NetConfig
from poselive.nets.hourglass import StackedHourglass

# Per-stack module lists of StackedHourglass: the parameters of stack i sit under "<list>.<i>.".
_PER_STACK = ("hourglasses", "features", "heads")
_REMAPS = ("remap_features", "remap_heatmaps")


def grow_stacks(state_dict: dict[str, torch.Tensor], trained: NetConfig, target: NetConfig) -> StackedHourglass:
    """A `target` network whose output equals that of the `trained` one with `state_dict`.

    Every field of the two configs but the name and stack count must agree (the layers must be the same shape)."""
    if target.stacks < trained.stacks:
        raise PoseliveError(f"cannot grow {trained.name} ({trained.stacks} stacks) into {target.name} "
                            f"({target.stacks} stacks): fewer stacks")
    if replace(trained, name=target.name, stacks=target.stacks, input_wh=target.input_wh) != target:
        raise PoseliveError(f"cannot grow {trained.name} into {target.name}: their layers differ beyond the "
                            "stack count")
    last = trained.stacks - 1
    grown = {}
    for key, value in state_dict.items():
        grown[key] = value.float() if value.is_floating_point() else value
        head, _, rest = key.partition(".")
        index, _, tail = rest.partition(".")
        if head in _PER_STACK and int(index) == last:
            for i in range(trained.stacks, target.stacks):
                grown[f"{head}.{i}.{tail}"] = grown[key].clone()
    model = StackedHourglass(target)
    for key, value in model.state_dict().items():
        head, _, rest = key.partition(".")
        if head in _REMAPS and int(rest.partition(".")[0]) >= last:
            grown[key] = torch.zeros_like(value)
    model.load_state_dict(grown)  # strict: any layer the copy missed fails here, not silently
    return model
