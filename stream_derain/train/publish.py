"""``stream-derain export``: a checkpoint to checked ONNX files and a manifest entry
that says how the model was made (``lineage``, :mod:`.lineage`).

An export goes to a folder under ``runs/export/`` unless told otherwise: exporting an
experiment must never replace the shipped model by accident. Shipping into
``engines/`` is its own step (:func:`stream_derain.model.ship.ship`), which checks
what it would replace.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..align import FLOWS, MACS_KEY, macs_table
from ..catalog import models_dir
from ..errors import ConfigError, ModelError
from .lineage import build_lineage

log = logging.getLogger(__name__)
EXPORT_ROOT = Path("runs") / "export"


def default_out(name: str) -> Path:
    """Where an export goes when no folder is given: ``runs/export/<name>``."""
    return EXPORT_ROOT / name


@dataclass(frozen=True)
class ExportConfig:
    checkpoint: Path
    out: Path | None = None  # None: default_out(name)
    name: str = "derain-student"
    version: str = "1"
    dev_scores: Mapping[str, Any] = field(default_factory=dict)  # read_dev_scores of an eval report
    recipe: Path | None = None  # the config file it was trained with (its base chain joins the lineage)
    aliases: Mapping[str, str] = field(default_factory=dict)  # parent path as recorded -> where it is now
    # added to the replacement head's logits (its operating point: the gate opens more for > 0);
    # chosen on training clips (scripts/gate_offset.py), recorded in the manifest and lineage
    gate_offset: float = 0.0
    # the gate's sharpness: logits l -> gate_scale (l + gate_offset); chosen with the offset
    gate_scale: float = 1.0
    stills: str | None = None  # the single-frame model still images run instead (shipped beside it)
    # the align mode inference runs (align.FLOWS) if not the one it was trained with: a finer
    # flow of the same kind needs no retraining (docs/derainer_v4_video.md, "flow-chain")
    align: str | None = None

    @property
    def folder(self) -> Path:
        return self.out if self.out is not None else default_out(self.name)


def read_dev_scores(path: Path) -> dict[str, dict[str, float]]:
    """Mean PSNR/SSIM (Y), brightness bias and detail ratio of input and output per set,
    from an eval JSON report (bias and detail where the report has them)."""
    try:
        results = json.loads(path.read_text())
        return {r["set"]: {f"{side}_{k}": r[side][k] for side in ("input", "output")
                           for k in ("psnr_y", "ssim_y", "bias", "detail") if k in r[side]}
                for r in results}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read dev-set scores from {path}: {exc}") from None


def parse_aliases(items: list[str]) -> dict[str, str]:
    """``RECORDED=NOW`` pairs (``--parent-at``) as a dict."""
    pairs = [item.split("=", 1) for item in items]
    bad = [item for item, pair in zip(items, pairs) if len(pair) != 2 or not all(pair)]
    if bad:
        raise ConfigError(f"--parent-at takes RECORDED=NOW, got {bad[0]!r}")
    return dict(pairs)  # type: ignore[arg-type]


def refuse_shipped_folder(folder: Path) -> None:
    """ConfigError when ``folder`` is the shipped models folder: only ``ship`` writes there,
    after checking what it would replace."""
    try:
        shipped = models_dir().resolve()
    except ModelError:  # no shipped models anywhere: nothing to protect
        return
    if folder.resolve() == shipped:
        raise ConfigError(f"{folder} holds the shipped models: export elsewhere (default "
                          f"runs/export/NAME), then `stream-derain ship` it")


def inference_align(align: str, trained: str | None, checkpoint: Path) -> str:
    """``align`` if a model trained with ``trained`` alignment may run it: a flow mode
    (:data:`.align.FLOWS`) for a model trained on flow-aligned windows; else ConfigError."""
    if trained in (None, "none"):
        raise ConfigError(f"{checkpoint} was not trained on aligned windows: --align does not apply")
    if align not in FLOWS:
        raise ConfigError(f"--align must be one of {', '.join(FLOWS)}, got {align!r}")
    return align


def export_checkpoint(cfg: ExportConfig) -> dict[str, Any]:
    """Export ``cfg.checkpoint`` (FP32 + FP16, each checked against torch) into
    ``cfg.folder`` and write its manifest entry with ``training`` and ``lineage``."""
    refuse_shipped_folder(cfg.folder)
    from ..model.export import export_model
    from .checkpoint import read_checkpoint
    from .supervised import load_derainer
    from .temporal import ARCH as TEMPORAL
    from .temporal import load_temporal

    load = load_temporal if read_checkpoint(cfg.checkpoint).get("arch") == TEMPORAL else load_derainer
    model, ckpt = load(cfg.checkpoint)
    adjustments: dict[str, Any] = {}
    if cfg.gate_offset or cfg.gate_scale != 1.0:
        from ..model.temporal import shift_gate

        try:
            shift_gate(model, cfg.gate_offset, cfg.gate_scale)
        except ValueError as exc:
            raise ConfigError(f"{cfg.checkpoint}: {exc}: --gate-offset / --gate-scale do not apply") from None
        adjustments["gate_offset"] = cfg.gate_offset
        if cfg.gate_scale != 1.0:
            adjustments["gate_scale"] = cfg.gate_scale
    train_cfg = ckpt.get("train_cfg", {})
    trained_align = train_cfg.get("align", "none") if ckpt["arch"] == TEMPORAL else None
    if cfg.align is not None and cfg.align != trained_align:
        adjustments["align"] = inference_align(cfg.align, trained_align, cfg.checkpoint)
    extra: dict[str, Any] = {
        "trained_steps": ckpt["step"], "checkpoint_arch": ckpt["arch"],
        **({"align": trained_align} if trained_align is not None else {}),
        # the training config itself is the lineage's train_cfg (written once, under its hash)
        "training": {"steps": ckpt["step"], "train_seconds": ckpt.get("extra", {}).get("train_seconds")},
        "lineage": build_lineage(cfg.checkpoint, recipe=cfg.recipe, aliases=cfg.aliases,
                                 dev_scores={"dev_scores": dict(cfg.dev_scores)} if cfg.dev_scores else {},
                                 adjustments=adjustments),
        **adjustments,
    }
    align = adjustments.get("align", trained_align)
    if align not in (None, "none"):
        extra[MACS_KEY] = macs_table(align, model.tcfg.frames)
    if cfg.dev_scores:
        extra["dev_scores"] = dict(cfg.dev_scores)
    if cfg.stills:
        extra["stills"] = cfg.stills
    entry = export_model(model, cfg.folder, cfg.name, cfg.version, extra)
    log.info("exported %s v%s (lineage %s) to %s", cfg.name, cfg.version,
             entry["lineage"]["lineage_hash"], cfg.folder)
    return entry
