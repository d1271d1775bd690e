"""The multi-frame student (derainer v4): v3's network plus temporal evidence.

Rain adds light to a pixel for about one frame and moves on; the scene stays. The
student sees a window of K frames, stacked on the channel axis in *slot order*: slot
0 is the target frame (the one derained), slots 1..K-1 its neighbours (for
``centred`` windows the offsets 0, -1, +1, -2, +2; for ``causal`` ones 0, -1, -2, ...;
:data:`OFFSETS`). One set of weights serves both modes: training mixes them.

- **temporal evidence** (:class:`~.evidence.TemporalEvidence`, no weights): for each colour
  channel, the target's brightening over each neighbour, d_j = I_0 - I_j, reduced
  over the neighbours to two maps: the least brightening (min_j d_j: rain in the
  target is brighter than *every* neighbour, a moving edge rarely is) and the middle
  one (the mean of d_j without its extremes: the median for K = 5, the mean for
  K = 3), which tolerates one neighbour where rain covers the same pixel. The frames
  are not aligned: implicit alignment, as multi-frame video denoisers do without
  flow; the network learns from the target's own content where motion, not rain,
  made a pixel brighter. (``align = "flow"`` in training warps neighbours by DIS flow
  first: the explicit-alignment ablation; docs/derainer_v4.md.)
- a convolution (``kernel`` 1 or 3 over the evidence pixel-unshuffled like the frame,
  computed as the equivalent stride-s one over the 6 evidence channels) adds it to v3's
  rain stem before its ReLU. That convolution is zero-initialised, so a student grown
  from v3 reproduces v3 exactly at step 0.
- everything else is v3's :class:`~.student.DerainStudent` on the target frame:
  O_1 = clamp(I_0 - R + D, 0, 1).
- optional **temporal gate** (``gate``, v4's design): the crude training-free filter
  that gains +5 dB on held-out video replaces a pixel brighter than its neighbours'
  median by that median. The trimmed mean above is that median's difference (for
  K = 5, I_0 - median of the four neighbours), so the temporal background is
  T = I_0 - max(middle, 0). The gate learns *where* to believe it: a head on the rain
  features predicts a full-resolution map g in [0, 1] (sigmoid of a pixel-shuffled
  3x3 convolution whose weights start at 0 and bias at -6), and
  output = (1 - g) O_1 + g min(O_1, T): where the gate opens, the darker of the
  network's output and the temporal background (rain only adds light, so subtracting
  what the network already removed twice is avoided). At step 0 g = 0.0025 everywhere:
  v3 within a grey level. (A first version scaled g by a learned scalar that started
  at 0, for an exact v3 at step 0: the gate's weights then get no gradient until the
  scalar grows, and the scalar alone only sees a uniform gate, which costs more on
  rain-free windows than it gains on rainy ones: it stayed at 0.001 for 500 steps.)
  Trained through the output alone it never opened (issue 26, stop 25).
- **replacement head** (``head`` > 0 hidden channels; v4.1's and v4.2's design, an alternative to
  ``gate``; docs/derainer_v4_video.md): the same replacement, output = O_1 - g
  relu(O_1 - T), but the gate comes from a head of its own (:class:`ReplaceHead`) that
  reads the *temporal* picture, the flow-aligned neighbours' verdict rather than v3's
  features: the
  least and median brightening, the neighbours' spread (how well they agree: a flow
  error makes them disagree), the target, and what the replacement would remove.
  It is trained with v3 frozen, through the output and directly (a weighted binary
  cross-entropy: open where T is nearer the clean frame than O_1), so a closed start
  (bias -6) is no obstacle. v3 frozen keeps single frames exactly v3's. ``floor``:
  differences under that many grey levels are never replaced (sensor noise and
  compression make a clean frame differ from its neighbours' median by a few levels
  everywhere; a partly open gate would darken it); ``every``: only light that every
  aligned neighbour lacks (a highlight one neighbour shares is not transient), or with
  ``shared`` n all but n of them (in real rain another streak often crosses the same
  pixel in one neighbour);
  ``rain_input``: the head also reads v3's rain layer R, what one frame's view of the
  streak's shape says (grown from a head without it: the new input's weights start at
  zero); ``base_evidence``: the head sits on v4's network (the evidence convolution in
  the rain stem, trained on unaligned windows) instead of v3's alone; ``head_scale`` 4:
  the head works at a quarter of the positions (v4.4's, half the MACs of the half-
  resolution head; trained to reproduce v4.3's head, ``head_teacher`` in training).

Input Bx(3K)xHxW in [0, 1]; output Bx3xHxW. H, W multiples of ``scale``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .evidence import (
    EVIDENCE_CHANNELS,
    TemporalEvidence,
    evidence_from,
    kth_brightest,
    neighbour_extremes,
    neighbour_slots,
    spread_from,
)
from .student import DerainStudent, StudentConfig

# slot offsets (frames relative to the target) of each window mode, by K
OFFSETS: dict[int, dict[str, tuple[int, ...]]] = {
    3: {"centred": (0, -1, 1), "causal": (0, -1, -2)},
    5: {"centred": (0, -1, 1, -2, 2), "causal": (0, -1, -2, -3, -4)},
    7: {"centred": (0, -1, 1, -2, 2, -3, 3), "causal": (0, -1, -2, -3, -4, -5, -6)},
}
GATE_BIAS = -6.0  # the gate's initial logit: sigmoid(-6) = 0.0025
HEAD_INPUTS = 13  # least and median brightening (3 + 3), spread (1), target (3), removal (3)
RAIN_INPUTS = 3  # with ``rain_input``: v3's rain layer R, where one frame's view sees streaks
HEAD_GAIN = 8.0  # frame differences are small; scaled before the head's first convolution


class ReplaceHead(nn.Module):
    """Bx13xHxW temporal picture (Bx16xHxW with the rain layer) -> Bx1xHxW gate logits, at
    1/``scale`` resolution inside (2: v4.1-v4.3's head; 4: the quarter-resolution head,
    a quarter of the positions, v4.4's). First a 6x6 convolution at stride 2 for
    ``scale`` 2 (the same as a 3x3 one over the picture pixel-unshuffled by 2, without the
    unshuffle's transpose, which cost ONNX Runtime 10 ms a 640x360 frame); for ``scale``
    4 a 4x4 one at stride 4, the same as a 1x1 one over the picture unshuffled by 4 (each
    position its own 4x4 pixels).
    Then a 3x3 one spaced 4 pixels, ``context`` more 3x3 ones spaced 8, 16, ... pixels (a
    streak's shape over tens of pixels), and a 3x3 one to s² logits per position,
    pixel-shuffled back (receptive field 18 px at ``scale`` 2, 66 px with ``context`` 2).
    (Folding the picture's gain into the first convolution's weights saves OpenVINO
    nothing measurable, and would rename the weights the torch backend loads by name.)"""

    def __init__(self, hidden: int, context: int = 0, inputs: int = HEAD_INPUTS, scale: int = 2) -> None:
        super().__init__()
        if scale not in (2, 4):
            raise ValueError(f"the replacement head works at scale 2 or 4, got {scale}")
        self.scale = scale
        self.shuffle = nn.PixelShuffle(scale)
        # the difference maps (all but the target, channels 7-9) times HEAD_GAIN, as one
        # per-channel scale that runtimes fold into the first convolution's weights
        gain = torch.full((1, inputs, 1, 1), HEAD_GAIN)
        gain[:, 7:10] = 1.0
        self.register_buffer("gain", gain, persistent=False)
        first = (nn.Conv2d(inputs, hidden, 6, stride=2, padding=2) if scale == 2
                 else nn.Conv2d(inputs, hidden, scale, stride=scale))
        spaced = [4 // scale, *((8 << i) // scale for i in range(context))]  # dilations
        body: list[nn.Module] = [first, nn.ReLU()]
        for d in spaced:
            body += [nn.Conv2d(hidden, hidden, 3, padding=d, dilation=d), nn.ReLU()]
        body.append(nn.Conv2d(hidden, scale * scale, 3, padding=1))
        self.body = nn.Sequential(*body)
        last = self.body[-1]
        nn.init.zeros_(last.weight)  # closed at step 0: v3 within a grey level
        nn.init.constant_(last.bias, GATE_BIAS)
        if scale == 2:  # heads saved before stop 36 read the picture unshuffled
            self._register_load_state_dict_pre_hook(_strided_first_conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.gain
        if self.scale == 4 and torch.is_autocast_enabled("cpu"):
            # torch 2.13's CPU bf16 convolution with kernel = stride = 4 and no padding
            # computes garbage for 16 or 24 input channels on an AMX Xeon (errors larger
            # than the output; test_the_head_in_bf16_computes_what_it_does_in_fp32), as
            # oneDNN's AMX brgemm convolution has for other strided shapes (pytorch#169688,
            # oneDNN#5494): the head runs in fp32
            with torch.autocast("cpu", enabled=False):
                return self.shuffle(self.body(x.float()))
        return self.shuffle(self.body(x))


def strided_weights(w: torch.Tensor, s: int) -> torch.Tensor:
    """The O x (C s²) x k x k weights of a convolution over a picture pixel-unshuffled by
    ``s`` (padding k // 2) -> the O x C x ks x ks weights of the stride-``s`` convolution
    over the picture itself (padding s (k // 2)) that computes the same, without the
    unshuffle's transpose: w'[o, c, s ky + dy, s kx + dx] = w[o, c s² + s dy + dx, ky, kx]."""
    o, packed, k = w.shape[0], w.shape[1], w.shape[-1]
    w = w.reshape(o, packed // (s * s), s, s, k, k)  # o, c, dy, dx, ky, kx
    return w.permute(0, 1, 4, 2, 5, 3).reshape(o, packed // (s * s), k * s, k * s)


def _strided_first_conv(state: dict, prefix: str, *args: object) -> None:
    """Weights saved with the first convolution over the unshuffled picture (O x 4C x 3
    x 3) become the equivalent stride-2 6x6 convolution's (O x C x 6 x 6)."""
    key = prefix + "body.0.weight"
    w = state.get(key)
    if w is not None and w.shape[-1] == 3:
        state[key] = strided_weights(w, 2)


def _strided_evidence_conv(module: TemporalStudent, state: dict, prefix: str, *args: object) -> None:
    """Weights saved with the evidence convolution over the unshuffled evidence (before
    stop 36: O x 6s² x k x k) become the equivalent stride-s convolution's."""
    key = prefix + "temporal.weight"
    w = state.get(key)
    if w is not None and w.shape[1] == EVIDENCE_CHANNELS * module.cfg.scale ** 2:
        state[key] = strided_weights(w, module.cfg.scale)


@dataclass(frozen=True)
class TemporalConfig:
    """The v3 student's hyperparameters plus the window: ``frames`` K and the kernel of
    the evidence convolution."""

    student: dict[str, int] = field(default_factory=dict)  # overrides of StudentConfig
    frames: int = 5
    kernel: int = 1
    gate: bool = False  # the temporal gate (see the module docstring)
    head: int = 0  # hidden channels of the replacement head (0: none; not with ``gate``)
    floor: float = 0.0  # grey levels: the head's replacement ignores smaller differences (noise)
    every: bool = False  # the head replaces only where every neighbour is darker by more than ``floor``
    context: int = 0  # more dilated layers in the replacement head (ReplaceHead)
    rain_input: bool = False  # the head also reads v3's rain layer R (the streak's shape in one frame)
    shared: int = 0  # with ``every``: how many neighbours may share the light (another streak there)
    base_evidence: bool = False  # with a head: the network under it keeps its evidence convolution (v4's)
    head_scale: int = 2  # the head's resolution inside: 1/2 (v4.1-v4.3) or 1/4 (v4.4)


class TemporalStudent(DerainStudent):
    """Window Bx(3K)xHxW (slot 0 the target) -> (output, rain layer, detail layer), each Bx3xHxW."""

    def __init__(self, cfg: TemporalConfig) -> None:
        super().__init__(StudentConfig(**cfg.student))
        self.tcfg = cfg
        s, c = self.cfg.scale, self.cfg.channels
        self.evidence = TemporalEvidence(cfg.frames)
        # the evidence convolution: a kernel-k convolution over the evidence unshuffled by
        # s, written as the stride-s one over the evidence itself (strided_weights; the
        # unshuffle's transpose cost OpenVINO 2 ms a 640x360 frame)
        self.temporal = nn.Conv2d(EVIDENCE_CHANNELS, c, cfg.kernel * s, stride=s,
                                  padding=s * (cfg.kernel // 2))
        nn.init.zeros_(self.temporal.weight)  # step 0 reproduces the single-frame student
        nn.init.zeros_(self.temporal.bias)
        self._register_load_state_dict_pre_hook(_strided_evidence_conv, with_module=True)
        if cfg.gate and cfg.head:
            raise ValueError("a temporal student has the gate or the replacement head, not both")
        if cfg.head and s % cfg.head_scale:
            raise ValueError(f"a head at 1/{cfg.head_scale} resolution needs the network's scale "
                             f"to be a multiple of it, got {s}")
        if not 0 <= cfg.shared <= cfg.frames - 2:
            raise ValueError(f"shared must be in [0, {cfg.frames - 2}] for {cfg.frames} frames, "
                             f"got {cfg.shared}")
        if cfg.base_evidence and not cfg.head:
            raise ValueError("base_evidence places a replacement head over v4's network: it needs head > 0")
        inputs = HEAD_INPUTS + (RAIN_INPUTS if cfg.rain_input else 0)
        self.head = ReplaceHead(cfg.head, cfg.context, inputs, cfg.head_scale) if cfg.head else None
        self.gate: nn.Conv2d | None = None
        if cfg.gate:  # rain features -> s*s gate logits per packed pixel -> HxW
            self.gate = nn.Conv2d(c, s * s, 3, padding=1)
            nn.init.zeros_(self.gate.weight)
            nn.init.constant_(self.gate.bias, GATE_BIAS)  # g = 0.0025 at step 0: below a grey level

    @property
    def in_channels(self) -> int:
        return 3 * self.tcfg.frames

    @property
    def stem_reads_evidence(self) -> bool:
        """Whether the evidence convolution feeds the rain stem: always but under a head
        over v3 alone (there it stays at its zero initialisation, frozen)."""
        return self.head is None or self.tcfg.base_evidence

    @property
    def outside_graph(self) -> tuple[str, ...]:
        """State-dict prefixes that the exported graph leaves out: the evidence convolution
        where the stem does not read it."""
        return () if self.stem_reads_evidence else ("temporal.",)

    def grown_parameters(self) -> list[nn.Parameter]:
        """What v4 adds to the single-frame student (trained at a larger learning rate)."""
        extra = [m for m in (self.gate, self.head) if m is not None]
        return [*super().grown_parameters(), *self.temporal.parameters(),
                *(p for m in extra for p in m.parameters())]

    def replace_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """With the replacement head: (O_1, removal relu(O_1 - T), gate logits, detail D);
        the output is O_1 - sigmoid(logits) * removal."""
        out, removal, picture, detail = self.head_input(x)
        return out, removal, self.head(picture), detail

    def head_input(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The window -> (O_1, removal, the head's picture, detail D): the network under
        the head on the target (v3's alone, the evidence convolution frozen at zero and
        left out of the graph, unless ``base_evidence``) and what the head reads, the
        window's reductions computed once for both."""
        extremes = neighbour_extremes(x, self.tcfg.frames)
        target = x[:, :3]
        out, rain, detail = self.decode(target, self.rain_features(target, self._stem_extra(x, extremes)))
        return (out, *self.temporal_picture(x, out, rain, extremes), detail)

    def temporal_picture(self, x: torch.Tensor, out: torch.Tensor, rain: torch.Tensor | None,
                         extremes: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """The window, its :func:`neighbour_extremes`, and the output O_1 and rain layer R
        of the network under the head on its target (R only read with ``rain_input``) ->
        (removal relu(O_1 - T), Bx3xHxW; the head's input picture, Bx13xHxW, Bx16xHxW with
        R)."""
        target, brightest, darkest, total = extremes
        evidence = evidence_from(target, brightest, darkest, total, self.tcfg.frames)
        removal = torch.relu(out - (target - torch.relu(evidence[:, 3:])))
        floor = self.tcfg.floor / 255.0
        if self.tcfg.floor > 0 or self.tcfg.every:
            # a dead zone: noise-sized differences are never replaced; with ``every``,
            # light that more than ``shared`` aligned neighbours also have is not transient
            keep = removal > floor
            if self.tcfg.every:
                keep = keep & (self._least_lack(x, target, evidence) > floor)
            removal = removal * keep.to(removal.dtype)
        parts = [evidence, spread_from(brightest, darkest), target, removal]
        return removal, torch.cat(parts + [rain] if self.tcfg.rain_input else parts, dim=1)

    def _least_lack(self, x: torch.Tensor, target: torch.Tensor, evidence: torch.Tensor) -> torch.Tensor:
        """Bx3xHxW: how much brighter the target is than its (``shared`` + 1)-th brightest
        neighbour; with ``shared`` 0 the least brightening (evidence channels 0-2)."""
        if not self.tcfg.shared:
            return evidence[:, :3]
        nb = neighbour_slots(x, self.tcfg.frames)
        return target - kth_brightest(nb.unbind(dim=1), self.tcfg.shared + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Bx(3K)xHxW -> Bx3xHxW, the exported graph: :meth:`forward_all`'s output with v3's
        network run packed (:meth:`~.student.DerainStudent.decode_packed`: the target
        unshuffled once, one shuffle out; the same arithmetic). The evidence stays at full
        resolution: unshuffling the whole window costs a CPU runtime more than the
        reductions it would move (OpenVINO, 640x360: 5 ms for 15 channels)."""
        if self.gate is not None or not self.packs:
            return self.forward_all(x)[0]
        extremes = neighbour_extremes(x, self.tcfg.frames)  # shared by the evidence and the head
        packed = self.unshuffle(x[:, :3])
        feats = self.rain_features_packed(packed, self._stem_extra(x, extremes))
        out, rain = self.decode_packed(packed, feats)
        out = self.shuffle(out)
        if self.head is None:
            return out
        removal, picture = self.temporal_picture(x, out, self.shuffle(rain) if self.tcfg.rain_input else None,
                                                 extremes)
        return out - torch.sigmoid(self.head(picture)) * removal

    def _stem_extra(self, x: torch.Tensor, extremes: tuple[torch.Tensor, ...]) -> torch.Tensor | None:
        """What the evidence (from the window's :func:`neighbour_extremes`) adds to the rain
        stem (BxCx(H/s)x(W/s)); None where the stem does not read it."""
        return self.temporal(evidence_from(*extremes, self.tcfg.frames)) if self.stem_reads_evidence else None

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        target = x[:, :3]
        if self.head is not None:
            single, removal, logits, detail = self.replace_terms(x)
            out = single - torch.sigmoid(logits) * removal
            return out, target + detail - out, detail
        evidence = self.evidence(x)
        feats = self.rain_features(target, self.temporal(evidence))
        out, rain, detail = self.decode(target, feats)
        if self.gate is None:
            return out, rain, detail
        g = torch.sigmoid(self.shuffle(self.gate(feats)))  # Bx1xHxW
        background = target - torch.relu(evidence[:, 3:])  # the neighbours' median where darker
        out = out - g * torch.relu(out - background)  # (1 - g) O + g min(O, T)
        return out, target + detail - out, detail  # O = I - R + D


def build_temporal(student: dict[str, int] | None = None, frames: int = 5, kernel: int = 1,
                   gate: bool = False, head: int = 0, floor: float = 0.0,
                   every: bool = False, context: int = 0, rain_input: bool = False,
                   shared: int = 0, base_evidence: bool = False, head_scale: int = 2) -> TemporalStudent:
    """A temporal student: v3's network (``student`` overrides StudentConfig) over K frames."""
    return TemporalStudent(TemporalConfig(dict(student or {}), frames, kernel, gate, head, floor, every,
                                          context, rain_input, shared, base_evidence, head_scale))


def shift_gate(model: nn.Module, offset: float, scale: float = 1.0) -> None:
    """The replacement head's logits l -> ``scale`` (l + ``offset``), folded into its last
    convolution: the operating point between rain removed and harm on rain-free video,
    chosen after training. ``offset`` moves where the gate is half open; ``scale`` > 1
    makes it sharper: a pixel the head is unsure of is replaced more nearly wholly or
    not at all, rather than half (a half-open gate leaves a dimmer streak and still
    softens the clean texture it opens on). ValueError for a model without a replacement
    head or a scale that is not positive."""
    if not isinstance(model, TemporalStudent) or model.head is None:
        raise ValueError("no replacement head (a temporal student with head > 0) to offset")
    if not scale > 0:
        raise ValueError(f"the gate's scale must be positive, got {scale}")
    last = model.head.body[-1]
    with torch.no_grad():
        last.bias.copy_(scale * (last.bias + offset))
        last.weight.mul_(scale)


def temporal_config_dict(model: TemporalStudent) -> dict:
    return asdict(model.tcfg)
