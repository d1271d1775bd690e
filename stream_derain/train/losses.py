"""Losses of the task-transfer recipe. These are this project's design, inspired by
Semi-DRDNet's contrastive regularisation and Wang, Ma and Liu (2022); they are not
the papers' exact losses.

``f`` below is the recognition teacher's fixed feature map (BxFx(H/8)x(W/8)); its
parameters are frozen, gradients flow only into the image it looks at.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Features = Callable[[torch.Tensor], torch.Tensor]


def feature_match(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Feature distillation: L1 between adapted student and teacher features (same shape),
    divided by the teacher's mean magnitude so that layers of any scale weigh alike."""
    teacher = teacher.detach()
    return F.l1_loss(student, teacher) / (teacher.abs().mean() + 1e-6)


def feature_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample mean L1 distance of two feature maps: BxFxhxw, BxFxhxw -> B."""
    return (a - b).abs().mean(dim=(1, 2, 3))


def hinged_contrast(f: Features, anchor: torch.Tensor, positive: torch.Tensor,
                    negative: torch.Tensor) -> torch.Tensor:
    """Contrastive term with a bounded push: d(a, pos) + relu(d(pos, neg) - d(a, neg)).

    The anchor is pulled to the positive and pushed from the negative only until it is
    as far from the negative as the positive itself is; beyond that the push stops, so
    it cannot reward moving away in directions the positive does not go (the ratio form
    d(a, pos) / d(a, neg) did, and cost texture). The positive and negative only
    provide targets (no gradient)."""
    fa = f(anchor)
    with torch.no_grad():
        fp, fn = f(positive), f(negative)
        reach = feature_distance(fp, fn)
    return (feature_distance(fa, fp) + F.relu(reach - feature_distance(fa, fn))).mean()


def dual_contrast(f: Features, out: torch.Tensor, rain: torch.Tensor, rainy: torch.Tensor,
                  clean: torch.Tensor) -> torch.Tensor:
    """Dual contrastive regularisation (our design, after Semi-DRDNet): the output is pulled
    to the clean background and pushed from the rainy input, and the predicted rain
    layer is pulled to the true rain layer (rainy - clean) and pushed from the background."""
    return hinged_contrast(f, out, clean, rainy) + hinged_contrast(f, rain, rainy - clean, clean)


def push_from_input(f: Features, out: torch.Tensor, rainy: torch.Tensor, margin: float) -> torch.Tensor:
    """Unpaired push (no clean target): margin / (d(f(out), f(rainy)) + margin), in (0, 1],
    falling as the output's features move away from the real rainy input's."""
    with torch.no_grad():
        fr = f(rainy)
    return (margin / (feature_distance(f(out), fr) + margin)).mean()


def rain_free_score(logit: torch.Tensor) -> torch.Tensor:
    """-log(1 - p_rain), from the recognition teacher's logit (B): 0 when surely rain-free."""
    return F.softplus(logit).mean()


def identity_guard(out: torch.Tensor, rainy: torch.Tensor, rain: torch.Tensor, threshold: float,
                   cap: float) -> torch.Tensor:
    """Keeps unsupervised terms from erasing real detail: L1 of the output to the input
    where the predicted rain layer is below ``threshold`` (a detached soft mask), plus a
    penalty on the mean absolute change above ``cap``."""
    mask = (rain.detach().abs().mean(dim=1, keepdim=True) / threshold).clamp(0, 1)
    change = (out - rainy).abs()
    return (change * (1 - mask)).mean() + F.relu(change.mean() - cap)


def gradients(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical finite differences of BxCxHxW images."""
    return img[..., :, 1:] - img[..., :, :-1], img[..., 1:, :] - img[..., :-1, :]


def no_new_detail(out: torch.Tensor, rainy: torch.Tensor) -> torch.Tensor:
    """Deraining removes edges, it never adds them: mean excess of the output's gradient
    magnitude over the input's, per pixel and channel. Zero for the input itself, small
    for outputs that smooth it (streaks removed; a blur only shifts some edges by a
    pixel), large for invented texture such as the grid that fooled the recognition
    teacher."""
    pairs = zip(gradients(out), gradients(rainy), strict=True)
    return sum(F.relu(o.abs() - i.abs()).mean() for o, i in pairs)
