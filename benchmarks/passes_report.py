"""What dlc's graph passes do to each model: kernels and layout transforms, with and without them.

"stock" runs TVM's own passes only (decompose BN, canonicalize, fold constants, legalize, fuse): dlc's
``DLC_PASSES`` are disabled. For each model the table gives the kernels after fusion, the standalone layout
transform kernels left (a transform fused into a conv's epilogue costs no extra pass over memory), the layout
transforms in the graph, and BatchNorm arithmetic left outside the conv weights.

    python benchmarks/passes_report.py [--models resnet50,vgg19] [--md out.md]

Latency before/after is measured by the benchmark suite with the same switch:
``python benchmarks/run.py --models cnns --disable-pass <each of DLC_PASSES>``.
"""

from __future__ import annotations

import argparse
import re

import tvm

from dlc.frontend import import_onnx, load_model
from dlc.models import LIGHT_MODELS, model_path
from dlc.options import CompileOptions
from dlc.pipeline import Pipeline
from dlc.target import resolve_target

DLC_PASSES = ("remove-dropout", "sum-to-add", "fold-affine", "fast-math", "pad-channels", "layout-nchwc", "layout-grouped",
              "fold-layout-transforms", "reuse-layout-copies", "winograd")


def counts(name: str, disabled: tuple[str, ...]) -> dict[str, int]:
    target = resolve_target("llvm")
    mod = import_onnx(load_model(model_path(name))).mod
    pipeline = Pipeline(target, CompileOptions(disable_passes=disabled))
    graph = pipeline.run(mod, until="graph")
    script = graph["main"].script()
    fused = Pipeline(target, CompileOptions(disable_passes=disabled)).run(mod, until="fuse")
    kernels = [gv.name_hint for gv, f in fused.functions_items() if isinstance(f, tvm.tirx.PrimFunc)]
    return {
        "kernels": len(kernels),
        "transform kernels": sum(1 for k in kernels if re.fullmatch(r"te_layout_transform\d*", k)),
        "graph transforms": len(re.findall(r"= R\.layout_transform\(", script)),
        "BN ops left": len(re.findall(r"= R\.(?:subtract|divide)\(", script)) + script.count("R.nn.batch_norm("),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(LIGHT_MODELS))
    ap.add_argument("--md", help="also write the table to this markdown file")
    args = ap.parse_args()
    cols = ("kernels", "transform kernels", "graph transforms", "BN ops left")
    lines = ["| model | " + " | ".join(f"{c} (stock -> dlc)" for c in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for name in args.models.split(","):
        stock, ours = counts(name, DLC_PASSES), counts(name, ())
        lines.append(f"| {name} | " + " | ".join(f"{stock[c]} -> {ours[c]}" for c in cols) + " |")
        print(lines[-1], flush=True)
    if args.md:
        with open(args.md, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
