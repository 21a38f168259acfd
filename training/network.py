"""The dense landmark network (paper, section 3.1) in plain PyTorch (dev-only).

A MobileNetV2 (Sandler et al. 2018; width multiplier `width`) whose last layer outputs
three values per landmark: x, y normalised from [0, S] to [-1, 1] over the S px crop, and
log sigma in the same normalised units. The input is the BGR crop as float32 (B, 3, S, S)
in [0, 255]; the network normalises it itself, so an exported ONNX model takes raw pixels.

Heads (`head`): "pool" averages the last feature map over space before the linear layer
(MobileNetV2's classifier head); "spatial" reduces it to `SPATIAL_CHANNELS` channels
(1x1 conv) and flattens the (S/32)^2 cells into the linear layer, so the layer sees where
features fire, not only that they do (a departure from the plain classifier head,
measured in training/README.md).

The loss is the paper's Gaussian negative log-likelihood (eq. 1) with per-landmark
weights lambda_i, or plain L2 on the positions for the ablation (Fig. 8).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

#: MobileNetV2's inverted-residual stages: expansion t, channels c, repeats n, stride s.
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1))
#: Clamp of the predicted log sigma (normalised units) in the loss: sigma in
#: [exp(-9), exp(2)] of half the crop, i.e. 0.01 px to 590 px at 160 px.
LOG_SIGMA_RANGE = (-9.0, 2.0)
#: Channels per cell of the last feature map that the "spatial" head flattens.
SPATIAL_CHANNELS = 64
HEADS = ("pool", "spatial")


def _channels(value: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv(inputs: int, outputs: int, kernel: int, stride: int, groups: int = 1,
          activation: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(inputs, outputs, kernel, stride, kernel // 2, groups=groups, bias=False),
              nn.BatchNorm2d(outputs)]
    if activation:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """Expand (1x1), depthwise (3x3, stride), project (1x1, linear); residual when shapes match."""

    def __init__(self, inputs: int, outputs: int, stride: int, expansion: int):
        super().__init__()
        hidden = inputs * expansion
        layers = [] if expansion == 1 else [_conv(inputs, hidden, 1, 1)]
        layers += [_conv(hidden, hidden, 3, stride, groups=hidden),
                   _conv(hidden, outputs, 1, 1, activation=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and inputs == outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


def cells_per_side(size: int) -> int:
    """Cells a side of the last feature map for an S px input: five stride-2 stages, padded."""
    return math.ceil(size / 32)


class DenseLandmarkNet(nn.Module):
    """MobileNetV2 backbone + a linear layer to (B, L, 3): x, y in [-1, 1], log sigma.

    Parameters
    ----------
    num_landmarks : L
    width : MobileNetV2 width multiplier (1.0: the standard network)
    head : "pool" (global mean) or "spatial" (flattened cells; see the module docstring)
    size : input side S in px (the "spatial" head's cell count depends on it)
    """

    def __init__(self, num_landmarks: int, width: float = 1.0, head: str = "pool",
                 size: int = 128):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        self.num_landmarks = num_landmarks
        self.width = width
        self.head_kind = head
        channels = _channels(32 * width)
        layers = [_conv(3, channels, 3, 2)]
        for expansion, outputs, repeats, stride in STAGES:
            outputs = _channels(outputs * width)
            for k in range(repeats):
                layers.append(InvertedResidual(channels, outputs, stride if k == 0 else 1,
                                               expansion))
                channels = outputs
        last = _channels(1280 * max(1.0, width))
        layers.append(_conv(channels, last, 1, 1))
        if head == "spatial":
            layers.append(_conv(last, SPATIAL_CHANNELS, 1, 1))
            last = SPATIAL_CHANNELS * cells_per_side(size) ** 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(last, 3 * num_landmarks)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.head.weight, std=1e-3)
        with torch.no_grad():   # start at the crop centre with sigma ~ 0.1 of the half crop
            self.head.bias.view(num_landmarks, 3)[:, :2] = 0.0
            self.head.bias.view(num_landmarks, 3)[:, 2] = -2.3

    def set_mean_positions(self, mean: np.ndarray) -> None:
        """Start the position outputs at `mean` (L, 2), normalised units (the head's bias)."""
        with torch.no_grad():
            self.head.bias.view(self.num_landmarks, 3)[:, :2] = torch.as_tensor(
                np.asarray(mean, dtype=np.float32))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = (image - 127.5) / 64.0
        x = self.features(x)
        x = x.mean((2, 3)) if self.head_kind == "pool" else x.flatten(1)
        return self.head(x).view(-1, self.num_landmarks, 3)


def gnll_loss(output: torch.Tensor, target: torch.Tensor, weights: torch.Tensor,
              beta: float = 0.0) -> torch.Tensor:
    """Eq. 1 averaged over the batch and normalised by sum(lambda):
    sum_i lambda_i (log sigma_i^2 + |mu_i - mu'_i|^2 / (2 sigma_i^2)).

    output : (B, L, 3); target : (B, L, 2) normalised; weights : (L,) lambda, or (B, L)
        lambda times a per-sample mask.
    beta : > 0 multiplies each term by stop-gradient(sigma_i^(2 beta)) (beta-NLL, Seitzer
        et al. 2022): the same stationary mu and sigma as eq. 1, but a landmark whose
        sigma has grown does not lose its gradient on mu by 1 / sigma^2 (beta = 1: the mu
        gradient of L2). 0: eq. 1 exactly.
    """
    log_sigma = output[..., 2].clamp(*LOG_SIGMA_RANGE)
    squared = ((output[..., :2] - target) ** 2).sum(-1)
    per_landmark = 2.0 * log_sigma + 0.5 * squared * torch.exp(-2.0 * log_sigma)
    if beta:
        per_landmark = per_landmark * torch.exp(2.0 * beta * log_sigma.detach())
    return _weighted_mean(per_landmark, weights)


def l2_loss(output: torch.Tensor, target: torch.Tensor, weights: torch.Tensor,
            beta: float = 0.0) -> torch.Tensor:
    """The ablation's loss: sum_i lambda_i |mu_i - mu'_i|^2 (positions only), same
    normalisation as `gnll_loss`; sigma is not trained (`beta` is ignored)."""
    squared = ((output[..., :2] - target) ** 2).sum(-1)
    return _weighted_mean(squared, weights)


def _weighted_mean(per_landmark: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(lambda * term) / sum(lambda) over batch and landmarks; per_landmark (B, L),
    weights (L,) or (B, L) (per sample: a zero drops a landmark from that sample)."""
    weights = weights.expand_as(per_landmark)
    return (per_landmark * weights).sum() / weights.sum().clamp_min(1e-12)


LOSSES = {"gnll": gnll_loss, "l2": l2_loss}


def widen(source: DenseLandmarkNet, target: DenseLandmarkNet, seed: int = 0) -> None:
    """Copy `source` into `target`, a network of the same landmarks, head and size but a
    width multiplier at least as large, so that `target` computes the same function
    (Net2WiderNet, Chen et al. 2016): every new channel repeats an old one (its producing
    filter and batch norm copied), and each consumer of a repeated channel splits the old
    weight among the copies with random positive shares that sum to one, so the copies'
    gradients differ and training breaks the symmetry. A residual stream keeps one channel
    map through its stage; layers whose output width does not change with the multiplier
    (the last 1x1 expansion, the spatial head's reduction) keep their output channels as
    they are, and the linear head is copied unchanged.
    """
    if (source.num_landmarks, source.head_kind) != (target.num_landmarks, target.head_kind):
        raise ValueError("widen: source and target differ in landmarks or head")
    if len(source.features) != len(target.features) or target.width < source.width:
        raise ValueError(f"widen: cannot widen width {source.width} to {target.width}")
    residuals = [[getattr(layer, "residual", None) for layer in net.features]
                 for net in (source, target)]
    if residuals[0] != residuals[1]:     # e.g. width 0.25, where channel counts clamp at 8
        raise ValueError(f"widen: widths {source.width} and {target.width} have different "
                         "residual connections")
    rng = np.random.default_rng(seed)
    channels = _ChannelMap(np.arange(3), rng)                    # the BGR input
    with torch.no_grad():
        for old, new in zip(source.features, target.features):
            if isinstance(old, InvertedResidual):
                stream = channels
                for old_conv, new_conv in zip(old.block, new.block):
                    last = old_conv is old.block[-1]
                    outputs = stream if last and old.residual else None
                    channels = _copy_conv(old_conv, new_conv, channels, rng, outputs)
            else:
                channels = _copy_conv(old, new, channels, rng)
        target.head.load_state_dict(source.head.state_dict())


class _ChannelMap:
    """Which old channel each new channel copies (`origin`, (C_new,)) and the share of the
    old channel's weight that a consumer gives each copy (`share`, (C_new,), summing to 1
    over an old channel's copies)."""

    def __init__(self, origin: np.ndarray, rng: np.random.Generator):
        self.origin = origin
        weights = rng.uniform(0.5, 1.5, len(origin))
        totals = np.bincount(origin, weights=weights)
        self.share = weights / totals[origin]

    @classmethod
    def grown(cls, old: int, new: int, rng: np.random.Generator) -> "_ChannelMap":
        """The first `old` channels kept in place, the other `new - old` copies of random ones."""
        return cls(np.concatenate([np.arange(old), rng.integers(0, old, new - old)]), rng)


def _copy_conv(old: nn.Sequential, new: nn.Sequential, inputs: _ChannelMap,
               rng: np.random.Generator, outputs: _ChannelMap | None = None) -> _ChannelMap:
    """Copy one conv + batch norm (+ ReLU6) block of `_conv` into its wider twin; returns
    the map of its output channels (`outputs`, or a new one)."""
    old_conv, old_norm, new_conv, new_norm = old[0], old[1], new[0], new[1]
    depthwise = old_conv.groups > 1
    if depthwise:
        outputs = inputs
    elif outputs is None:
        outputs = _ChannelMap.grown(old_conv.out_channels, new_conv.out_channels, rng)
    origin = torch.as_tensor(outputs.origin)
    weight = old_conv.weight[origin]
    if not depthwise:
        share = torch.as_tensor(inputs.share, dtype=weight.dtype)
        weight = weight[:, torch.as_tensor(inputs.origin)] * share.view(1, -1, 1, 1)
    new_conv.weight.copy_(weight)
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(new_norm, name).copy_(getattr(old_norm, name)[origin])
    new_norm.num_batches_tracked.copy_(old_norm.num_batches_tracked)
    return outputs
