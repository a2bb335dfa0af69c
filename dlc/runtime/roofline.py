"""The roofline picture: each kernel at (arithmetic intensity, GFLOP/s) under this machine's roofs.

The roof is ``min(peak FLOP/s, intensity x bandwidth)``, drawn for the measured DRAM bandwidth (solid) and
the L3/L2 bandwidths (dashed): a kernel whose data stays in a cache can go above the DRAM slope. A point's
area is its share of the run time, so the kernels worth working on are the big points far below the roof.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .peak import MachinePeak


@dataclass
class RooflinePoint:
    label: str
    intensity: float  # FLOP per byte
    gflops: float
    share: float  # of the run time, 0..1


def plot_roofline(points: list[RooflinePoint], peak: MachinePeak | None, path: str | os.PathLike, *,
                  title: str = "", label_top: int = 8) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_listed = min(label_top, len(points))
    fig, ax = plt.subplots(figsize=(10, 6.5 + 0.16 * n_listed), dpi=110)
    xs = [p.intensity for p in points] or [1.0]
    lo = min(0.05, min(xs) / 2)
    hi = max(1000.0, max(xs) * 2)
    x = np.logspace(np.log10(lo), np.log10(hi), 400)
    if peak is not None:
        styles = {"DRAM": ("-", "black"), "L3": ("--", "tab:gray"), "L2": (":", "tab:gray")}
        for level, (style, color) in styles.items():
            bw = peak.bandwidth_gbs.get(level)
            if not bw:
                continue
            ax.plot(x, np.minimum(peak.gflops, x * bw), style, color=color, lw=1.5 if level == "DRAM" else 1,
                    label=f"{level} {bw:.0f} GB/s" + (f" (ridge {peak.gflops / bw:.0f} FLOP/B)"
                                                      if level == "DRAM" else ""))
        ax.axhline(peak.gflops, color="tab:red", lw=1, alpha=0.6)
        ax.text(hi, peak.gflops * 1.04, f"peak FP32 {peak.gflops:.0f} GFLOP/s ({peak.threads} threads)",
                ha="right", va="bottom", color="tab:red", fontsize=9)
    if points:
        sizes = [30 + 1500 * p.share for p in points]
        sc = ax.scatter([p.intensity for p in points], [max(p.gflops, 1e-3) for p in points], s=sizes,
                        c=[p.share * 100 for p in points], cmap="viridis_r", alpha=0.75, edgecolors="black",
                        linewidths=0.5, zorder=3)
        fig.colorbar(sc, ax=ax, label="% of kernel time")
        # Number the biggest points and list them in a box: long kernel names never overlap that way.
        top = sorted(points, key=lambda p: -p.share)[:label_top]
        lines = []
        for rank, p in enumerate(top, start=1):
            ax.annotate(str(rank), (p.intensity, max(p.gflops, 1e-3)), fontsize=8, fontweight="bold",
                        xytext=(5, 5), textcoords="offset points", zorder=4)
            name = p.label if len(p.label) <= 48 else p.label[:45] + "..."
            of_peak = f" ({100 * p.gflops / peak.gflops:.1f}% of peak)" if peak is not None else ""
            lines.append(f"{rank}. {name:48}  {p.share * 100:4.1f}% of time, {p.gflops:.3g} GFLOP/s{of_peak}, "
                         f"{p.intensity:.3g} FLOP/B")
        if lines:  # under the plot, in the space tight_layout leaves for it (see the bottom margin below)
            fig.text(0.02, 0.01, "\n".join(lines), fontsize=7.5, va="bottom", ha="left", family="monospace")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    top = max([peak.gflops if peak else 1.0] + [p.gflops for p in points]) * 2
    bottom = min([p.gflops for p in points if p.gflops > 0] + [top / 1e4]) / 2
    ax.set_ylim(bottom, top)
    ax.set_xlabel("arithmetic intensity (FLOP / byte of compulsory traffic)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout(rect=(0, 0.16 * n_listed / (6.5 + 0.16 * n_listed) + 0.01, 1, 1))
    fig.savefig(path)
    plt.close(fig)
    return path
