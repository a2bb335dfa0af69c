"""Can this process run that artifact? Versions and target, checked from metadata before loading code."""

from __future__ import annotations

import tvm

from ..errors import ArtifactError
from ..target import host_target, llvm_features
from ..version import versions


def check_compatible(meta: dict, *, where: str) -> None:
    built, here = meta.get("versions", {}), versions()
    for name in ("dlc", "tvm"):
        if built.get(name) != here[name]:
            raise ArtifactError(f"built by {name} {built.get(name)}, this is {name} {here[name]}: recompile it",
                                where=where)
    target = meta["target"]
    if target["kind"] == "cuda":
        if not tvm.cuda(0).exist:
            raise ArtifactError(f"built for cuda {target.get('arch')}; no CUDA GPU is visible here "
                                "(or TVM's CUDA runtime cannot load libcuda)", where=where)
    else:
        missing = llvm_features(target["mcpu"]) - llvm_features(str(host_target().attrs["mcpu"]))
        missing = {f for f in missing if not f.startswith(("tuning", "fast-", "slow-", "prefer-", "false-deps"))}
        if missing:
            raise ArtifactError(f"built for CPU {target['mcpu']}; this CPU lacks {', '.join(sorted(missing))}",
                                where=where)
