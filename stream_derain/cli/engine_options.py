"""The engine options shared by ``derain``, ``live`` and ``bench``, declared once.

:func:`engine_options` adds them to a command and hands the command one
:class:`~stream_derain.engine_spec.EngineSpec` built from them, in place of its
``engine`` parameter; the command declares only what is its own::

    @app.command("derain")
    @handle_errors
    @engine_options()
    def derain_cmd(inputs: ..., engine: EngineSpec = EngineSpec(), codec: ...) -> None:
        ...

A new backend option is one entry of :data:`ENGINE_OPTIONS` and one line of
:func:`typed_options`: every command then takes it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Optional, TypeVar

import typer

from ..backends.options import OV, TRT, BackendOptions, Torch, parse_size
from ..engine_spec import EngineSpec
from ..smooth.core import DEFAULT_STRENGTH
from .common import MODEL_PANEL, SMOOTH_PANEL

F = TypeVar("F", bound=Callable[..., Any])


def _opt(default: Any, *decls: str, panel: str = MODEL_PANEL, **kw: Any) -> Any:
    return typer.Option(default, *decls, rich_help_panel=panel, **kw)


# (parameter, type, option): in the order --help lists them, under their panels
ENGINE_OPTIONS: tuple[tuple[str, Any, Any], ...] = (
    ("backend", str, _opt("auto", "--backend", help="auto, onnxruntime, openvino, torch or tensorrt.")),
    ("precision", str, _opt("auto", "--precision", "-p", help="auto, fp32, bf16, fp16 or int8 (auto: the "
                                                              "fastest that passed its quality gate here).")),
    ("model", Optional[str], _opt(None, "--model", show_default=False,
                                  help="Shipped model name or an .onnx file.")),
    ("batch", int, _opt(1, "--batch", min=1, metavar="N", help="Frames per inference call.")),
    ("threads", int, _opt(0, "--threads", min=0, metavar="N", help="CPU threads (0: all cores).")),
    ("device", Optional[str], _opt(None, "--device", show_default=False, metavar="DEVICE",
                                   help="torch: auto, cpu, cuda or cuda:N.")),
    ("device_frames", Optional[bool], _opt(None, "--device-frames/--host-frames", show_default=False,
                                           help="Keep frames on the GPU between stages (default: for "
                                                "CUDA backends that can).")),
    ("trt_max_size", Optional[str], _opt(None, "--trt-max-size", show_default=False, metavar="WxH",
                                         help="TensorRT: largest frame of the engine (1920x1080).")),
    ("trt_max_batch", Optional[int], _opt(None, "--trt-max-batch", min=1, show_default=False, metavar="N",
                                          help="TensorRT: largest batch (4).")),
    ("trt_workspace", Optional[int], _opt(None, "--trt-workspace", min=1, show_default=False, metavar="MIB",
                                          help="TensorRT: builder workspace (1024).")),
    ("ov_streams", Optional[int], _opt(None, "--ov-streams", min=0, show_default=False, metavar="N",
                                       help="OpenVINO: parallel inference streams (0: its choice).")),
    ("window", str, _opt("auto", "--window", panel=SMOOTH_PANEL, metavar="MODE",
                         help="Neighbours of a multi-frame model: centred (earlier and later frames), "
                              "causal (earlier only) or auto (files: centred; live: centred if "
                              "--max-latency allows).")),
    ("smooth", bool, _opt(True, "--smooth/--no-smooth", panel=SMOOTH_PANEL, help="Temporal smoother.")),
    ("smooth_strength", float, _opt(DEFAULT_STRENGTH, "--smooth-strength", panel=SMOOTH_PANEL, min=0.0,
                                    max=1.0, metavar="S", help="Smoother strength.")),
)
TYPED = ("device", "trt_max_size", "trt_max_batch", "trt_workspace", "ov_streams")  # -> backend_options


def typed_options(device: Optional[str] = None, trt_max_size: Optional[str] = None,
                  trt_max_batch: Optional[int] = None, trt_workspace: Optional[int] = None,
                  ov_streams: Optional[int] = None) -> tuple[BackendOptions, ...]:
    """The typed backend options of the flags given (none: every backend's defaults)."""
    opts: list[BackendOptions] = [Torch(device=device)] if device else []
    if trt_max_size or trt_max_batch or trt_workspace:
        h, w = parse_size(trt_max_size) if trt_max_size else (None, None)
        opts.append(TRT(height=h, width=w, max_batch=trt_max_batch, workspace_mb=trt_workspace))
    if ov_streams is not None:
        opts.append(OV(streams=ov_streams))
    return tuple(opts)


def engine_spec(**values: Any) -> EngineSpec:
    """The :class:`EngineSpec` of the parsed option values (those left out: its defaults)."""
    typed = typed_options(**{k: values.pop(k) for k in TYPED if k in values})
    return EngineSpec(**values, backend_options=typed)


def engine_options(without: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Give the command the engine options (but those named in ``without``, which it
    declares itself, e.g. bench's repeatable --backend) where its signature has an
    ``engine`` parameter, and call it with the :class:`EngineSpec` they make."""
    group = [(name, kind, info) for name, kind, info in ENGINE_OPTIONS if name not in without]

    def decorate(func: F) -> F:
        sig = inspect.signature(func, eval_str=True)
        own = list(sig.parameters.values())
        at = [p.name for p in own].index("engine")
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=kind)
                 for name, kind, info in group]
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        params[at:at + 1] = added

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name, _, _ in group if name in kwargs}
            return func(*args, engine=engine_spec(**values), **kwargs)

        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params} | {"return": sig.return_annotation}
        return wrapper  # type: ignore[return-value]

    return decorate
