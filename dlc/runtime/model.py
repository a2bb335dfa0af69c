"""CompiledModel: run a compiled model with checked inputs, export it, and load it back."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tvm
import tvm_ffi
from tvm import relax

from .._native import quiet_tvm_logs
from ..errors import ArtifactError, DlcError, InputError
from ..signature import Signature, TensorSpec
from .artifact import BlobPatch, read_metadata, write_artifact
from .compat import check_compatible
from .threads import set_num_threads


class CompiledModel:
    """A compiled model: ``run(feeds) -> outputs`` keyed by ONNX names, ``export(path)``, ``metadata``."""

    def __init__(self, module: tvm.runtime.Module | tvm.runtime.Executable, metadata: dict, *,
                 blob_patch: BlobPatch | None = None, num_threads: int | None = None):
        self._module = module
        self.metadata = metadata
        self.signature = Signature.from_json(metadata["signature"])
        self._blob_patch = blob_patch
        self._requested_threads = num_threads
        self._vm: relax.VirtualMachine | None = None
        self.num_threads: int | None = None

    # ---- what it is -------------------------------------------------------------------------------------
    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.signature.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.signature.outputs

    @property
    def target(self) -> dict:
        return self.metadata["target"]

    @property
    def kernels(self) -> list[dict]:
        """One row per kernel: name, blocks, shapes, schedule origin, GFLOP (what ``--explain`` prints)."""
        return self.metadata.get("kernels", [])

    def __repr__(self) -> str:
        ins = ", ".join(f"{t.name}: {t.dtype}{t.shape_str()}" for t in self.inputs)
        return f"<CompiledModel {self.metadata.get('model', '?')} for {self.target['key']} ({ins})>"

    # ---- running ----------------------------------------------------------------------------------------
    def _device(self) -> tvm.runtime.Device:
        if self.target["kind"] == "cuda":
            dev = tvm.cuda(0)
            if not dev.exist:
                raise DlcError(f"this model is compiled for cuda {self.target.get('arch')}, and no CUDA GPU is "
                               "visible here (or TVM's CUDA runtime cannot load libcuda)")
            return dev
        return tvm.cpu(0)

    def _virtual_machine(self) -> relax.VirtualMachine:
        if self._vm is None:
            device = self._device()
            self.num_threads = set_num_threads(self._requested_threads)
            self._vm = relax.VirtualMachine(self._module, device)
        return self._vm

    def check_feeds(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The feeds in input order, or InputError naming the first input that does not fit."""
        if not isinstance(feeds, Mapping):
            raise InputError(f"feeds must be a dict of input name -> array, got {type(feeds).__name__}")
        names = [t.name for t in self.inputs]
        for name in feeds:
            if name not in names:
                raise InputError(f"unknown input {name!r}; the model's inputs are {names}")
        arrays, sym = [], {}
        for spec in self.inputs:
            if spec.name not in feeds:
                raise InputError(f"missing input {spec.name!r} ({spec.dtype} {spec.shape_str()})")
            a = feeds[spec.name]
            if not isinstance(a, np.ndarray):
                a = np.asarray(a)
            if str(a.dtype) != spec.dtype:
                raise InputError(f"input {spec.name!r}: dtype {a.dtype}, expected {spec.dtype}")
            ok = a.ndim == len(spec.shape)
            for have, want in zip(a.shape, spec.shape):
                ok = ok and (have == want if isinstance(want, int) else sym.setdefault(want, have) == have)
            if not ok:
                raise InputError(f"input {spec.name!r}: shape {tuple(a.shape)}, expected {spec.shape_str()}"
                                 + (f" with {', '.join(f'{k}={v}' for k, v in sym.items())}" if sym else ""))
            arrays.append(np.ascontiguousarray(a))
        return arrays

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; outputs in ONNX output order, keyed by ONNX output name."""
        arrays = self.check_feeds(feeds)
        vm = self._virtual_machine()
        device = self._device()
        args = [tvm.runtime.tensor(a, device) for a in arrays]
        try:
            result = vm["main"](*args)
        except Exception as e:  # a run-time check inside the kernels (e.g. a symbolic-shape mismatch)
            first = (str(e).strip().splitlines() or [type(e).__name__])[-1]
            raise DlcError(f"run failed: {first}") from e
        results = list(result) if isinstance(result, (tvm_ffi.Array, list, tuple)) else [result]
        return {spec.name: r.numpy() for spec, r in zip(self.outputs, results)}

    __call__ = run

    def time_main(self, feeds: Mapping[str, np.ndarray], *, number: int = 1, repeat: int = 10,
                  min_repeat_ms: int = 0) -> list[float]:
        """Seconds per run of ``main``, ``repeat`` samples of ``number`` runs each (TVM's time_evaluator)."""
        arrays = self.check_feeds(feeds)
        vm = self._virtual_machine()
        device = self._device()
        args = [tvm.runtime.tensor(a, device) for a in arrays]
        timer = vm.time_evaluator("main", device, number=number, repeat=repeat, min_repeat_ms=min_repeat_ms)
        return list(timer(*args).results)

    # ---- hooks for bench and profile (dlc/runtime/bench.py, profile.py) ---------------------------------
    def virtual_machine(self) -> relax.VirtualMachine:
        """The VM, created on first use with the thread count set."""
        return self._virtual_machine()

    def device(self) -> tvm.runtime.Device:
        return self._device()

    def kernel_library(self) -> tvm.runtime.Module:
        """The host module holding the compiled kernels (the VM bytecode module's import)."""
        module = self._module.mod if isinstance(self._module, tvm.runtime.Executable) else self._module
        return module.imports[0]

    # ---- saving and loading -----------------------------------------------------------------------------
    def export(self, path: str | os.PathLike) -> Path:
        """Write the artifact (one .so with weights and metadata) to ``path``, atomically."""
        if not isinstance(self._module, tvm.runtime.Executable):
            raise ArtifactError("a loaded artifact is already a file; copy it instead of re-exporting")
        with quiet_tvm_logs():
            return write_artifact(self._module, self.metadata, path, self._blob_patch)


def load(path: str | os.PathLike, *, num_threads: int | None = None) -> CompiledModel:
    """Load an artifact written by ``CompiledModel.export`` / ``dlc compile``."""
    path = Path(path)
    meta = read_metadata(path)
    check_compatible(meta, where=str(path))
    try:
        with quiet_tvm_logs():
            module = tvm.runtime.load_module(str(path))
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ArtifactError(f"cannot load: {first}", where=str(path)) from e
    return CompiledModel(module, meta, num_threads=num_threads)
