"""Fit the Winograd cost model (``dlc.passes.winograd.COSTS``) to this machine.

For each 3x3 stride-1 layer of VGG-19 and ResNet-50 (``benchmarks/winograd.py``'s LAYERS), time the direct conv
and every Winograd variant: F(4,3) and F(2,3), each as one kernel (``fuse_rows``) and as three, kernels run
alone on random buffers, variants alternating, medians of ``--repeat``, one thread, thread CPU time. Then fit the
six rates of ``estimate`` (least squares on log time over every point) and print them as a ``COSTS`` row, with
each layer's fastest variant measured and the one the fitted model picks.

    python benchmarks/winograd_cost.py --repeat 9 --json sweep.json     # ~5 min on 2 cores
    python benchmarks/winograd_cost.py --fit sweep.json [more.json ...]  # fit again, no timing

The variants are forced by replacing the pass's ``choose`` and ``fuse_rows`` for the sweep: the pass builds
exactly what it would build had the model chosen them (three kernels where ``one_kernel`` needs a register
tile that does not divide the row).
"""

from __future__ import annotations

import argparse
import json
import math
import os

import numpy as np
from winograd import LAYERS, conv_model, layer_kernels, time_variants

VARIANTS = ("direct", "F4-1k", "F4-3k", "F2-1k", "F2-3k")  # F(m,3), one kernel (1k) or three (3k)


def sweep(repeat: int) -> list[dict]:
    import dlc.passes.winograd as pw

    forced: dict = {}
    real = pw.choose, pw.fuse_rows
    pw.choose = lambda c, k, h, w, mode, mcpu="": forced["m"] if mode == "on" else None
    pw.fuse_rows = lambda c, k, m, tiles: forced["fuse"]
    try:
        return _sweep(repeat, forced)
    finally:
        pw.choose, pw.fuse_rows = real


def _sweep(repeat: int, forced: dict) -> list[dict]:
    rows = []
    for model_name, c, k, hw, _ in LAYERS:
        model = conv_model(c, k, hw)
        kernels = {}
        for variant in VARIANTS:
            forced.update(m=int(variant[1]) if variant != "direct" else None, fuse=variant.endswith("1k"))
            kernels[variant] = layer_kernels(model, "off" if variant == "direct" else "on")
        ms = {v: 1e3 * t for v, t in time_variants(kernels, repeat, wall=False).items()}
        rows.append({"model": model_name, "c": c, "k": k, "hw": hw, "ms": ms})
        print(f"{c}->{k} @{hw}: " + "  ".join(f"{v} {t:.2f}" for v, t in ms.items()), flush=True)
    return rows


def predicted(rates: dict, c: int, k: int, hw: int, variant: str) -> float:
    """Seconds by ``estimate``'s formula with ``rates``, the form (one kernel or three) as forced."""
    from dlc.ops import winograd as wino
    from dlc.passes.winograd import estimate, row_fits

    if variant == "direct":
        return estimate(c, k, hw, hw, None, rates)
    m = int(variant[1])
    fused = variant.endswith("1k") and row_fits(c, wino.tiles(hw, m))  # forced to one kernel, where it can be
    return estimate(c, k, hw, hw, m, rates, fused=fused)


def fit(rows: list[dict]) -> dict:
    from scipy.optimize import minimize

    from dlc.passes.winograd import COSTS

    keys = list(COSTS["cascadelake"])
    points = [(r["c"], r["k"], r["hw"], v, t / 1e3) for r in rows for v, t in r["ms"].items()]

    def loss(log_rates):
        rates = dict(zip(keys, np.exp(log_rates)))
        return sum((math.log(predicted(rates, c, k, hw, v)) - math.log(t)) ** 2 for c, k, hw, v, t in points)

    start = np.log([COSTS["cascadelake"][key] for key in keys])
    result = minimize(loss, start, method="Nelder-Mead", options={"maxiter": 20000, "xatol": 1e-4, "fatol": 1e-9})
    rates = dict(zip(keys, np.exp(result.x)))
    print(f"rms log error {math.sqrt(result.fun / len(points)):.3f} over {len(points)} points")
    print("{" + ", ".join(f'"{key}": {v:.2g}' for key, v in rates.items()) + "}")
    for r in rows:
        fastest, picked = min(r["ms"], key=r["ms"].get), pass_pick(rates, r["c"], r["k"], r["hw"])
        print(f"{r['c']:>3}->{r['k']:<3} @{r['hw']:<3}  fastest {fastest:6s} {r['ms'][fastest]:6.2f} ms  "
              f"the pass would take {picked:6s} {r['ms'][picked]:6.2f} ms")
    return rates


def pass_pick(rates: dict, c: int, k: int, hw: int) -> str:
    """The variant ``--winograd auto`` builds with ``rates``: m by ``estimate``, the form by ``fuse_rows``."""
    from dlc.ops import winograd as wino
    from dlc.passes.winograd import choose, one_kernel

    m = choose(c, k, hw, hw, "auto", rates=rates)
    if m is None:
        return "direct"
    row = wino.tiles(hw, m)
    return f"F{m}-{'1k' if one_kernel(c, k, m, row * row, row) else '3k'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--json", help="write the sweep here")
    ap.add_argument("--fit", nargs="+", metavar="JSON", help="fit these sweeps instead of timing")
    args = ap.parse_args()
    if args.fit:
        rows = []
        for path in args.fit:
            with open(path) as f:
                rows += json.load(f)["layers"]
    else:
        os.environ["TVM_NUM_THREADS"] = "1"
        from dlc.runtime.bench import machine_info

        rows = sweep(args.repeat)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"machine": machine_info(1), "repeat": args.repeat, "layers": rows}, f, indent=1)
    fit(rows)


if __name__ == "__main__":
    main()
