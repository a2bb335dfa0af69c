"""dlc's Python API: ``compile`` an ONNX model into a ``CompiledModel``; ``load`` an artifact back.

    import dlc
    model = dlc.compile("resnet50.onnx", target="llvm")
    outputs = model.run({"data": x})          # {onnx output name: np.ndarray}
    model.export("resnet50.so")
    same = dlc.load("resnet50.so")
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import time
from collections.abc import Callable
from pathlib import Path

import onnx
import tvm

from ._native import quiet_tvm_logs
from .build import build
from .frontend import import_onnx, load_model
from .frontend.importer import ImportedModel
from .frontend.loader import LoadedModel
from .options import CompileOptions
from .pipeline import Pipeline
from .runtime import CompiledModel, load
from .schedule import load_rules_from_dir
from .target import describe, resolve_target
from .tune.lookup import open_tuning_records
from .version import versions

__all__ = ["CompileOptions", "CompiledModel", "compile", "load"]


def compile(  # noqa: A001  (the API's verb; shadows the builtin only inside dlc)
    model: str | os.PathLike | onnx.ModelProto,
    target: str | dict | None = None,
    *,
    options: CompileOptions | None = None,
    log: Callable[[str], None] | None = None,
    **option_values,
) -> CompiledModel:
    """Compile an ONNX model (a path or a ModelProto) for ``target``.

    Options come either as ``options=CompileOptions(...)`` or as keyword arguments named like its fields
    (``input_shapes={"x": (1, 3, 224, 224)}``, ``schedules=("my_rules/",)``, ...). ``log`` receives one
    line per step that takes time.
    """
    if options is None:
        options = CompileOptions(**option_values)
    elif option_values:
        options = dataclasses.replace(options, **option_values)
    if target is not None:
        options = dataclasses.replace(options, target=target)
    say = log or (lambda msg: None)
    t_start = time.perf_counter()

    tgt = resolve_target(options.target)
    records = open_tuning_records(tgt, options)  # None with tuning_db=False
    loaded, imported, pipeline = prepare(model, options, tgt, say)
    pipeline.tuned = records
    mod = pipeline.run(imported.mod)
    say(f"generating code for {tgt.kind.name}" + (" (nvcc)" if tgt.kind.name == "cuda" else ""))
    t_build = time.perf_counter()
    with quiet_tvm_logs():  # TVM's codegen warnings (unknown pragmas, pow) are for --verbose
        result = build(mod, tgt)
    timings = {**pipeline.timings, "build": time.perf_counter() - t_build, "total": time.perf_counter() - t_start}

    metadata = {
        "model": Path(loaded.source).name if loaded.source != "<ModelProto>" else loaded.source,
        "signature": imported.signature.to_json(),
        "target": describe(tgt),
        "versions": versions(),
        "options": _jsonable(dataclasses.asdict(options)),
        "phases": {p.name: p.passes for p in pipeline.phases()},
        "kernels": [k.to_json() for k in pipeline.kernels],
        "tuning_db": records.summary() if records is not None else None,
        "compile_seconds": {k: round(v, 3) for k, v in timings.items()},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if result.device_binaries:
        metadata["cuda"] = {
            "arch": result.device_binaries[0].arch,
            "fatbin_bytes": sum(len(b.fatbin) for b in result.device_binaries),
            "kernels": [k.to_json() for b in result.device_binaries for k in b.kernels],
        }
    return CompiledModel(result.executable, metadata, blob_patch=result.blob_patch)


def prepare(model: str | os.PathLike | onnx.ModelProto, options: CompileOptions, target: tvm.target.Target,
            say: Callable[[str], None]) -> tuple[LoadedModel, ImportedModel, Pipeline]:
    """What ``compile`` and ``dlc tune`` share, so tuning sees exactly the kernels a compile builds: the
    user's rules, the imported model and the pipeline (not run yet; ``tuned`` unset)."""
    for directory in options.schedules:
        load_rules_from_dir(directory)
    say("loading model")
    loaded = load_model(model)
    say("importing ONNX into Relax")
    imported = import_onnx(loaded, options.input_shapes)
    pipeline = Pipeline(target, options, tuned=None, log=say)
    return loaded, imported, pipeline


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value



