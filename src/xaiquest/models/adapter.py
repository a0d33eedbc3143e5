"""Any CNN classifier from a library (torchvision ``tv:``, timm ``timm:``) as a zoo model: its stem
adapted to small images and its named depths discovered, since such libraries share no stage naming.

ImageNet stems downsample 4x before the first stage (a strided conv, then a max-pool), which
would leave a CIFAR image 8x8 at stage1 and 1x1 at the end. As in the CIFAR variants of ResNet
(He et al., CVPR 2016) and DenseNet (Huang et al., CVPR 2017), for images under
``SMALL_IMAGE_LIMIT`` px the first conv gets stride 1 (and a 3x3 kernel where it was larger) and a
max-pool right after it becomes an identity; from that size up the network is the library's own,
so its published weights load unchanged.

The named depths are discovered from one dummy forward: ``stem`` produces the tensor that the rest
of the network starts from, and ``stageK`` is the last module at the K-th spatial resolution, i.e.
the one right before a downsampling.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from xaiquest.errors import ConfigError, UnknownNameError

SMALL_IMAGE_LIMIT = 64
"""Images smaller than this (px) get the adapted stem; larger ones keep the ImageNet stem."""


@dataclass(frozen=True)
class NetLayout:
    """What one dummy forward tells about a library network: its named depths and its classifier (module paths)."""

    depths: dict[str, str]
    head: str


class AdaptedModel(nn.Module):
    """A library's classifier plus the module paths of its named depths and of its classifier."""

    def __init__(self, net: nn.Module, layout: NetLayout) -> None:
        super().__init__()
        self.net = net
        self.depth_paths = layout.depths
        self.head_path = layout.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def classifier(self) -> nn.Module:
        return self.net.get_submodule(self.head_path)

    def named_depths(self) -> dict[str, nn.Module]:
        return {name: self.net.get_submodule(path) for name, path in self.depth_paths.items()}


def adapt(net: nn.Module, label: str, image_size: int) -> AdaptedModel:
    """``net`` (named ``label`` in errors) with the small-image stem below ``SMALL_IMAGE_LIMIT`` px and its depths."""
    if image_size < SMALL_IMAGE_LIMIT:
        adapt_stem(net)
    return AdaptedModel(net, discover_layout(net, label, image_size))


def unknown_name(kind: str, prefix: str, name: str, names: Sequence[str], listing: str) -> UnknownNameError:
    """An unknown library model: the closest names (or a sample of all) and where the full list is."""
    suggestions = difflib.get_close_matches(name, names, n=5, cutoff=0.5) or list(names[::max(1, len(names) // 8)])[:8]
    return UnknownNameError(f"unknown {kind} model {name!r}; e.g. {', '.join(prefix + s for s in suggestions)} "
                            f"(all: {listing})")


def stride_of(module: nn.Module) -> int:
    stride = getattr(module, "stride", 1)
    return max(stride) if isinstance(stride, tuple) else int(stride or 1)


def adapt_stem(net: nn.Module) -> None:
    """Stride-1, at most 3x3 first conv; a max-pool before any further downsampling becomes identity.

    A larger replaced kernel is freshly initialised (pretrained weights lose it).
    """
    modules = list(net.named_modules())
    index = next(i for i, (_, m) in enumerate(modules) if isinstance(m, nn.Conv2d))
    path, conv = modules[index]
    assert isinstance(conv, nn.Conv2d)
    downsampled = stride_of(conv) > 1
    if max(conv.kernel_size) > 3:
        small = nn.Conv2d(conv.in_channels, conv.out_channels, 3, padding=1, bias=conv.bias is not None)
        net.set_submodule(path, small)
    else:
        conv.stride = (1, 1)
    if not downsampled:
        return
    for path, module in modules[index + 1 :]:
        if isinstance(module, nn.MaxPool2d):
            net.set_submodule(path, nn.Identity())
            return
        if stride_of(module) > 1:
            return


@dataclass
class Call:
    """One module call seen by the discovery hooks; ``start``/``end`` order all calls in time."""

    path: str
    module: nn.Module
    start: int
    input: Any = None
    end: int = -1
    output: Any = None


def record_calls(net: nn.Module, image_size: int = 32) -> list[Call]:
    """Run a 1x3xSxS dummy batch through ``net`` (eval mode) and record every submodule call."""
    calls: list[Call] = []
    stack: list[Call] = []
    clock = itertools.count()

    def on_start(path: str, module: nn.Module, args: tuple[Any, ...]) -> None:
        call = Call(path, module, next(clock), args[0] if args else None)
        calls.append(call)
        stack.append(call)

    def on_end(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        call = stack.pop()
        call.end, call.output = next(clock), output

    handles = []
    for path, module in net.named_modules():
        if path:
            handles.append(module.register_forward_pre_hook(partial(on_start, path)))
            handles.append(module.register_forward_hook(on_end))
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros(1, 3, image_size, image_size))
    finally:
        net.train(was_training)
        for handle in handles:
            handle.remove()
    return calls


def area(tensor: Any) -> int:
    """Spatial size of an NCHW feature map; 0 for anything else, 1 for a global descriptor."""
    return tensor.shape[-2] * tensor.shape[-1] if isinstance(tensor, torch.Tensor) and tensor.dim() == 4 else 0


def is_feature_map(call: Call) -> bool:
    pooled = isinstance(call.module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))
    return area(call.output) > 1 and not pooled


def is_downsampling(call: Call) -> bool:
    return is_feature_map(call) and area(call.input) > area(call.output)


def contains(outer: Call, inner: Call) -> bool:
    return outer.start <= inner.start and inner.end <= outer.end


def producer(calls: list[Call], tensor: torch.Tensor, before: int) -> Call:
    """The last call to finish before ``before`` whose output is ``tensor`` (the outermost one)."""
    return max((c for c in calls if c.output is tensor and c.end < before), key=lambda c: c.end)


def discover_layout(net: nn.Module, label: str, image_size: int = 32) -> NetLayout:
    """Module paths of ``stem`` and ``stage1..N`` (see the module docstring) and of the classifier (the last
    top-level module called); ``label`` names the model in errors."""
    try:
        calls = record_calls(net, image_size)
    except Exception as error:  # noqa: BLE001 - any failure means the model cannot take inputs of this size
        raise ConfigError(
            f"{label} does not run on {image_size}x{image_size} inputs: {error}; set data.image_size larger"
        ) from error
    convs = [c for c in calls if isinstance(c.module, nn.Conv2d)]
    if len(convs) < 2:  # a patch embedding followed by tokens (a vision transformer) has no stages to name
        raise ConfigError(f"{label} has no convolutional stages (a vision transformer?); the adapter needs a CNN")
    first, second = convs[0], convs[1]
    # The stem ends where the first downsampling or the outermost call around the second conv
    # (but not the first) starts: that call's input is the stem's output.
    body = min(
        (c for c in calls if first.end < c.start and (contains(c, second) or is_downsampling(c))),
        key=lambda c: c.start,
    )
    stem = producer(calls, body.input, body.start)
    depths = {"stem": stem.path}
    # torchvision calls its classifier (fc / classifier) last; a conv classifier's class maps
    # (SqueezeNet) are not features.
    head = max((c for c in calls if "." not in c.path), key=lambda c: c.start)
    features = [c for c in calls if body.start <= c.start < head.start and is_feature_map(c)]
    ladder = sorted({area(c.output) for c in features if area(c.output) <= area(stem.output)}, reverse=True)
    for high, low in zip(ladder, ladder[1:]):
        steps = [c for c in features if is_downsampling(c) and (area(c.input), area(c.output)) == (high, low)]
        if not steps:  # a resolution seen only inside a block (e.g. one Inception branch)
            continue
        downsampling = min(steps, key=lambda c: c.start)
        if downsampling.input is not stem.output:
            depths[f"stage{len(depths)}"] = producer(calls, downsampling.input, downsampling.start).path
    last = max((c for c in features if area(c.output) == ladder[-1]), key=lambda c: c.end)
    depths[f"stage{len(depths)}"] = last.path
    return NetLayout(depths, head.path)
