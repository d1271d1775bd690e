"""The temporal evidence of a window of K frames, in slot order (slot 0 the target,
slots 1..K-1 its neighbours, :data:`.temporal.OFFSETS`): reductions over the neighbours
with no weights, shared by v4's evidence convolution and the replacement head
(:mod:`.temporal`). Each is a full-resolution elementwise pass in the exported graph, so
each is written for what CPU runtimes run fast (no per-frame slices of the 5-D tensor,
no TopK)."""

from __future__ import annotations

import torch
from torch import nn

EVIDENCE_CHANNELS = 6  # least and trimmed-mean brightening, per colour


def neighbour_slots(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Bx(3K)xHxW -> Bx(K-1)x3xHxW, the neighbours (slots 1..K-1) on their own axis: for
    reductions over K, a graph without per-frame channel slices (OpenVINO's bf16 path ran
    sliced 3-channel pieces 2.7x slower); one slice of channels 3.. rather than of the
    5-D tensor (which OpenVINO ran in its reference kernel)."""
    b, _, h, w = x.shape
    return x[:, 3:].reshape(b, frames - 1, 3, h, w)


def neighbour_extremes(x: torch.Tensor, frames: int) -> tuple[torch.Tensor, ...]:
    """Bx(3K)xHxW -> (target, brightest, darkest, sum) over the neighbours (slots 1..K-1),
    each Bx3xHxW: the three reductions that the evidence and the spread share."""
    nb = neighbour_slots(x, frames)
    return x[:, :3], nb.amax(dim=1), nb.amin(dim=1), nb.sum(dim=1)


def evidence_from(target: torch.Tensor, brightest: torch.Tensor, darkest: torch.Tensor,
                  total: torch.Tensor, frames: int) -> torch.Tensor:
    """-> Bx6xHxW: per colour the least brightening min_j (I_0 - I_j) = I_0 - max_j I_j and
    the trimmed mean of I_0 - I_j (the extremes dropped when K-1 > 2), I_0 minus the
    trimmed mean of the neighbours: no K-1 differences are formed."""
    n = frames - 1
    middle = (total - brightest - darkest) / (n - 2) if n > 2 else total / n
    return torch.cat([target - brightest, target - middle], dim=1)


class TemporalEvidence(nn.Module):
    """Bx(3K)xHxW -> Bx6xHxW: per colour, min_j (I_0 - I_j) and the trimmed mean of
    (I_0 - I_j) over the K-1 neighbours (the extremes dropped when K-1 > 2)."""

    def __init__(self, frames: int) -> None:
        super().__init__()
        if frames < 2:
            raise ValueError(f"a temporal student needs at least 2 frames, got {frames}")
        self.frames = frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return evidence_from(*neighbour_extremes(x, self.frames), self.frames)


def kth_brightest(values: tuple[torch.Tensor, ...], k: int) -> torch.Tensor:
    """The ``k``-th largest of equally shaped tensors, elementwise (k = 1: their maximum),
    by an insertion network of maxima and minima: the same values as a TopK over a
    stacked axis, which ONNX Runtime ran at 50 ms a 640x360 window (a fifth of the
    graph) against about 1 ms for the 2 (n - 1) k elementwise operations."""
    if not 1 <= k <= len(values):
        raise ValueError(f"k must be in [1, {len(values)}], got {k}")
    top: list[torch.Tensor] = []  # the largest so far, in decreasing order
    for v in values:
        for i, held in enumerate(top):
            if i == len(top) - 1 and len(top) == k:  # what falls off the end is not needed
                top[i] = torch.maximum(held, v)
                break
            top[i], v = torch.maximum(held, v), torch.minimum(held, v)
        else:
            if len(top) < k:
                top.append(v)
    return top[k - 1]


def spread_from(brightest: torch.Tensor, darkest: torch.Tensor) -> torch.Tensor:
    """-> Bx1xHxW: the range of the neighbours' values, the largest over the colours.
    Small where the aligned neighbours agree."""
    return (brightest - darkest).amax(dim=1, keepdim=True)
