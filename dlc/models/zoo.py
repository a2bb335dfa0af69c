"""Every model dlc's tests, benchmarks and tutorials use, by name, built once and cached on disk.

Cached under ``$DLC_CACHE/models`` (default ``~/.cache/dlc``), keyed by name, seed and ``CACHE_VERSION``
(bump it when a builder changes), written atomically so parallel test workers never read half a file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import onnx

from . import builders
from .light import LIGHT_MODELS, light_model

CACHE_VERSION = 1
BUILT: dict[str, Callable[..., onnx.ModelProto]] = {
    "mobilenet_v2": builders.mobilenet_v2,
    "transformer_encoder": builders.transformer_encoder,
}
# The CNN set the speed issues measure, and the full benchmark set.
BENCH_CNNS = ("resnet50", "densenet121", "inception_v1", "shufflenet", "squeezenet", "vgg19")
BENCH_MODELS = (*BENCH_CNNS, "mobilenet_v2", "transformer_encoder")
ALL_MODELS = (*LIGHT_MODELS, *BUILT)


def cache_dir() -> Path:
    return Path(os.environ.get("DLC_CACHE", Path.home() / ".cache" / "dlc"))


def model_path(name: str, seed: int = 0) -> Path:
    """Path of model ``name`` (a light-zoo name or a built one), built and cached on first use."""
    if name not in ALL_MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(ALL_MODELS)}")
    path = cache_dir() / "models" / f"{name}-s{seed}-v{CACHE_VERSION}.onnx"
    if not path.exists():
        model = light_model(name, seed) if name in LIGHT_MODELS else BUILT[name](seed=seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        onnx.save(model, tmp)
        os.replace(tmp, path)
    return path


def load(name: str, seed: int = 0) -> onnx.ModelProto:
    return onnx.load(model_path(name, seed))
