"""The artifact: one shared library holding code, weights and dlc's metadata.

Layout of ``model.so`` (an ordinary ELF shared object that ``tvm.runtime.load_module`` opens):

* TVM's own content: host code, and ``__tvm_ffi__library_bin``, the serialized module tree with the VM
  bytecode, the weights (VM constant pool) and, for cuda, the device code *compiled by nvcc* (the build
  swaps TVM's CUDA source for a fatbin; see ``dlc/build/cuda.py``);
* a section ``.dlc_metadata``: UTF-8 JSON (inputs/outputs, target, versions, passes, kernels, database).

The metadata is read by parsing ELF section headers, never by loading the library: that works without a
GPU, and a file that is not a dlc artifact is refused before any of its code is mapped.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import tvm
import tvm_ffi

from ..errors import ArtifactError

SECTION = ".dlc_metadata"
FORMAT = "dlc-artifact"
FORMAT_VERSION = 1
_BLOB_SYMBOL = "__tvm_ffi__library_bin"  # where TVM's loader looks for the packed module tree

BlobPatch = Callable[[bytes], bytes]


def _assemble(path_s: Path, body: str, out_o: Path) -> Path:
    path_s.write_text(body)
    # The system C compiler is already required: export_library links the .so with it.
    proc = subprocess.run(["cc", "-c", str(path_s), "-o", str(out_o)], capture_output=True, text=True)
    if proc.returncode:
        raise ArtifactError(f"assembling {path_s.name} failed: {proc.stderr.strip().splitlines()[:1]}")
    return out_o


def _metadata_object(metadata: dict, workdir: Path) -> Path:
    meta = workdir / "dlc_metadata.json"
    meta.write_text(json.dumps(metadata, sort_keys=True))
    return _assemble(workdir / "dlc_metadata.S",
                     f'\t.section {SECTION},"a",@progbits\n\t.incbin "{meta}"\n\t.byte 0\n',
                     workdir / "dlc_metadata.o")


def _pack_imports(patch: BlobPatch | None) -> Callable:
    """An ``export_library`` hook that packs the module tree like TVM does, after ``patch`` rewrote it.

    ``.incbin`` keeps gigabytes of weights out of any C source: the assembler copies the bytes.
    """

    def pack(module, is_system_lib, prefix, workspace_dir):
        if is_system_lib:
            raise ArtifactError("system-lib artifacts are not supported")
        blob = bytes(tvm_ffi.get_global_func("runtime.ModulePackImportsToTensor")(module).numpy().tobytes())
        if patch is not None:
            blob = patch(blob)
        work = Path(workspace_dir)
        (work / "devc.bin").write_bytes(blob)
        return str(_assemble(work / "devc.S",
                             f"\t.section .rodata\n\t.balign 64\n\t.globl {_BLOB_SYMBOL}\n"
                             f"\t.type {_BLOB_SYMBOL}, @object\n{_BLOB_SYMBOL}:\n"
                             f'\t.incbin "{work / "devc.bin"}"\n\t.size {_BLOB_SYMBOL}, {len(blob)}\n',
                             work / "devc.o"))

    return pack


def write_artifact(executable: tvm.runtime.Executable, metadata: dict, path: str | os.PathLike,
                   blob_patch: BlobPatch | None = None) -> Path:
    """Export ``executable`` with ``metadata`` to ``path``, atomically (a reader never sees half a file)."""
    path = Path(path)
    if path.suffix != ".so":
        raise ArtifactError(f"artifact must be a .so file, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **metadata}
    with tempfile.TemporaryDirectory(prefix="dlc-export-") as tmp:
        work = Path(tmp)
        staged = work / path.name
        executable.export_library(str(staged), fpack_imports=_pack_imports(blob_patch),
                                  addons=[str(_metadata_object(meta, work))], workspace_dir=tmp)
        final_tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(staged, "rb") as src, open(final_tmp, "wb") as dst:
                while chunk := src.read(1 << 24):
                    dst.write(chunk)
            os.replace(final_tmp, path)
        finally:
            final_tmp.unlink(missing_ok=True)
    return path


def _elf_section(data: bytes | mmap.mmap, name: str) -> bytes | None:
    """Contents of section ``name`` of a little-endian ELF64 file (None if absent)."""
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a little-endian 64-bit ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    if shoff == 0 or shentsize < 64 or shoff + shnum * shentsize > len(data) or shstrndx >= shnum:
        raise ValueError("bad ELF section header table")

    def header(i: int) -> tuple[int, int, int]:
        sh_name, _type, _flags, _addr, off, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return sh_name, off, size

    _, str_off, str_size = header(shstrndx)
    if str_off + str_size > len(data):
        raise ValueError("bad ELF section name table")
    wanted = name.encode()
    for i in range(shnum):
        sh_name, off, size = header(i)
        end = data.find(b"\0", str_off + sh_name, str_off + str_size) if sh_name < str_size else -1
        if end >= 0 and data[str_off + sh_name:end] == wanted:
            if off + size > len(data):
                raise ValueError(f"section {name} runs past the end of the file")
            return data[off:off + size]
    return None


# What the runtime reads from the metadata before it loads any code, and the JSON type each must have.
_REQUIRED = {"model": str, "signature": dict, "target": dict, "versions": dict}


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata of a dlc artifact, without loading it; ArtifactError if ``path`` is not one."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError("no such file", where=str(path))
    try:
        # Mapped, not read: an artifact holds the weights, and only its section headers are needed here.
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            raw = _elf_section(data, SECTION)
    except (ValueError, struct.error) as e:  # mmap of an empty file raises ValueError too
        raise ArtifactError(f"not a dlc artifact ({e})", where=str(path)) from None
    except OSError as e:
        raise ArtifactError(f"cannot read the file: {e.strerror or e}", where=str(path)) from None
    if raw is None:
        raise ArtifactError("not a dlc artifact (a shared library without dlc metadata)", where=str(path))
    try:
        meta = json.loads(raw.rstrip(b"\0").decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ArtifactError("dlc metadata is corrupt", where=str(path)) from None
    if meta.get("format") != FORMAT or not isinstance(meta.get("format_version"), int):
        raise ArtifactError("not a dlc artifact (unknown metadata format)", where=str(path))
    if meta["format_version"] > FORMAT_VERSION:
        raise ArtifactError(f"artifact format {meta['format_version']} is newer than this dlc reads "
                            f"({FORMAT_VERSION}); upgrade dlc", where=str(path))
    for key, kind in _REQUIRED.items():
        if not isinstance(meta.get(key), kind):
            raise ArtifactError(f"dlc metadata is corrupt (no valid {key!r})", where=str(path))
    sig, target = meta["signature"], meta["target"]
    if not (isinstance(sig.get("inputs"), list) and isinstance(sig.get("outputs"), list)
            and all(isinstance(t, dict) and {"name", "shape", "dtype"} <= t.keys()
                    for t in sig["inputs"] + sig["outputs"])):
        raise ArtifactError("dlc metadata is corrupt (bad 'signature')", where=str(path))
    if target.get("kind") not in ("llvm", "cuda") or not isinstance(target.get("key"), str) \
            or (target["kind"] == "llvm" and not isinstance(target.get("mcpu"), str)):
        raise ArtifactError("dlc metadata is corrupt (bad 'target')", where=str(path))
    return meta
