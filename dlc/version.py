"""dlc's version and the versions of what it is built on (recorded in every artifact and record)."""

from __future__ import annotations

import functools
from importlib import metadata

__version__ = "0.1.0"


@functools.cache
def versions() -> dict[str, str]:
    def v(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "unknown"

    return {"dlc": __version__, "tvm": v("apache-tvm"), "tvm_ffi": v("apache-tvm-ffi"), "onnx": v("onnx")}
