"""``dlc check``: compile a model, run it on the target's device, compare with onnxruntime, give a verdict.

The first command to run on new hardware: it exercises the whole path a deployment takes (compile, nvcc,
export, ``dlc.load``, run) and says whether the numbers agree with onnxruntime on this machine's CPU.

    result = dlc.check.check("model.onnx", "cuda")
    print(result.verdict, result.max_error)

For cuda without a visible GPU it still compiles (so compile and nvcc errors show) and then raises
``DeviceError``. With a GPU and a bare ``cuda`` target, it compiles for that GPU's own arch.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import tvm

from . import api
from .errors import DeviceError
from .options import CompileOptions
from .runtime import CompiledModel
from .runtime.bench import random_feeds
from .target import resolve_target

# Error relative to the reference output's scale (max |ref|, at least 1) above which a check fails.
DEFAULT_TOLERANCE = {"float32": 1e-3, "float64": 1e-6, "float16": 2e-2, "bfloat16": 5e-2}


@dataclass
class OutputCheck:
    name: str
    shape: tuple[int, ...]
    dtype: str
    max_abs_error: float
    scale: float  # max |reference|, at least 1
    tolerance: float
    exact: bool = False  # integer / bool outputs must match exactly

    @property
    def error(self) -> float:
        return self.max_abs_error / self.scale

    @property
    def ok(self) -> bool:
        return self.max_abs_error == 0 if self.exact else bool(self.error <= self.tolerance)


@dataclass
class CheckResult:
    model: str
    target_key: str
    device: str
    outputs: list[OutputCheck] = field(default_factory=list)
    latency_ms: float | None = None  # median over a few runs, after a warm-up

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)

    @property
    def max_error(self) -> float:
        return max((o.error for o in self.outputs), default=0.0)

    @property
    def verdict(self) -> str:
        return "PASS" if self.ok else "FAIL"


def gpu_arch() -> str | None:
    """``sm_XY`` of CUDA device 0, or None if no CUDA GPU is visible (or TVM cannot load libcuda)."""
    try:
        dev = tvm.cuda(0)
        if not dev.exist:
            return None
        return "sm_" + str(dev.compute_version).replace(".", "")
    except Exception:  # a TVM build without CUDA, a broken driver
        return None


def reference(model: str | os.PathLike | onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """onnxruntime's outputs on this machine's CPU (a path keeps external data next to the model working)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    return session.run(None, dict(feeds))


def compare(name: str, got: np.ndarray, want: np.ndarray, tolerance: float | None = None) -> OutputCheck:
    want = np.asarray(want)
    exact = want.dtype.kind in "biu"
    if got.shape != want.shape:  # a wrong shape is as wrong as it gets
        return OutputCheck(name, tuple(got.shape), str(got.dtype), float("inf"), 1.0, 0.0, exact)
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    finite = np.isfinite(want)
    # NaN/inf must sit where the reference has them; elsewhere the difference counts.
    mismatch = bool(np.any(np.isfinite(got) != finite)) or bool(np.any(got[~finite] != want[~finite]))
    err = float("inf") if mismatch else float(diff[finite].max(initial=0.0))
    scale = max(1.0, float(np.abs(want[finite]).max(initial=0.0)))
    tol = tolerance if tolerance is not None else DEFAULT_TOLERANCE.get(str(want.dtype), 1e-3)
    return OutputCheck(name, tuple(got.shape), str(got.dtype), err, scale, tol, exact)


def check(model: str | os.PathLike | onnx.ModelProto, target: str | dict | None = None, *,
          options: CompileOptions | None = None, feeds: Mapping[str, np.ndarray] | None = None,
          tolerance: float | None = None, seed: int = 0, runs: int = 10,
          log: Callable[[str], None] | None = None) -> CheckResult:
    """Compile ``model`` for ``target``, run it there through an exported artifact, compare with onnxruntime.

    Raises ``DeviceError`` (after compiling) if the target's device is not present here.
    """
    say = log or (lambda msg: None)
    options = dataclasses.replace(options or CompileOptions(), **({"target": target} if target is not None else {}))
    arch = gpu_arch()
    if options.target == "cuda" and arch is not None:  # a bare "cuda": compile for the GPU that is here
        options = dataclasses.replace(options, target=f"cuda:{arch}")
    tgt = resolve_target(options.target)
    compiled = api.compile(model, options=options, log=say)
    device = _device_for(compiled, tgt, arch)
    feeds = dict(feeds) if feeds is not None else random_feeds(compiled.inputs, seed)
    say(f"running on {device}")
    with tempfile.TemporaryDirectory(prefix="dlc-check-") as tmp:
        artifact = api.load(compiled.export(Path(tmp) / "model.so"))  # what a deployment loads
        outputs = artifact.run(feeds)
        latency = statistics.median(artifact.time_main(feeds, repeat=runs)) * 1e3 if runs else None
    say("running onnxruntime (CPU) for the reference")
    want = reference(model, feeds)
    checks = [compare(name, got, ref, tolerance) for (name, got), ref in zip(outputs.items(), want)]
    return CheckResult(compiled.metadata["model"], compiled.target["key"], device, checks, latency)


def _device_for(compiled: CompiledModel, tgt: tvm.target.Target, arch: str | None) -> str:
    """A name for the device the model will run on, or DeviceError if it is not here."""
    if tgt.kind.name != "cuda":
        return "cpu"
    want = compiled.target.get("arch", "")
    summary = _cuda_summary(compiled)
    if arch is None:
        raise DeviceError(f"compiled for {compiled.target['key']} ({summary}), but no CUDA GPU is visible here, "
                          "so nothing was run: run `dlc check` on the GPU machine")
    if int(arch[3:]) < int(want[3:]):
        raise DeviceError(f"compiled for {want}, but this GPU is {arch}: use --target cuda:{arch} (or plain cuda)")
    return f"cuda:0 ({tvm.cuda(0).device_name}, {arch})"


def _cuda_summary(compiled: CompiledModel) -> str:
    cuda = compiled.metadata.get("cuda", {})
    kernels = cuda.get("kernels", [])
    regs = max((k["registers"] for k in kernels), default=0)
    spills = sum(k["spill_stores"] + k["spill_loads"] for k in kernels)
    return (f"{len(kernels)} kernels through nvcc, {cuda.get('fatbin_bytes', 0) / 1e6:.1f} MB fatbin, "
            f"at most {regs} registers a thread, {spills} bytes of spills")
