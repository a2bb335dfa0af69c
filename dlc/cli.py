"""The ``dlc`` command: parse, call the API, print. Nothing here compiles or runs anything by itself.

Errors: a ``DlcError`` prints as one line ``dlc: error: ...`` and exits with its code (2 for bad input,
3 for a compile failure); anything else is a dlc bug, printed as one line with a hint; ``--verbose``
shows the traceback in both cases.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from . import api
from .errors import DlcError, InputError
from .options import CompileOptions
from .version import __version__

# Piped output (CI logs, files) gets wide tables instead of rich's 80-column default.
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
EXIT_INTERNAL = 70


# ---- helpers ----------------------------------------------------------------------------------------------
def _progress(quiet: bool) -> Callable[[str], None]:
    start = time.perf_counter()

    def say(msg: str) -> None:
        if not quiet:
            err.print(f"[dim]{time.perf_counter() - start:6.1f}s[/] {msg}")

    return say


def _add_compile_options(p: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per CompileOptions field (see dlc/options.py), except the fields named in ``skip``."""
    for f in CompileOptions.option_fields():
        if f.name in skip:
            continue
        m = f.metadata
        kw = {"dest": f.name, "help": m["help"], "metavar": m["metavar"]}
        if m["action"]:
            kw = {"dest": f.name, "help": m["help"], "action": m["action"]}
        elif m["repeat"]:
            kw["action"] = "append"
        if m["choices"]:
            kw["choices"] = m["choices"]
        p.add_argument(m["flag"], **kw)


def _options_from(args: argparse.Namespace) -> CompileOptions:
    values = {}
    for f in CompileOptions.option_fields():
        raw = getattr(args, f.name, None)
        if raw is None:
            continue
        parse = f.metadata["parse"]
        if f.metadata["repeat"]:
            items = [parse(r) if parse else r for r in raw]
            values[f.name] = dict(items) if f.default_factory is dict else tuple(items)
        else:
            values[f.name] = parse(raw) if parse else raw
    return CompileOptions(**values)


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temp file in the same folder, then rename: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def print_kernels(rows: list[dict], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for col, just in (("kernel", "left"), ("blocks", "left"), ("shapes", "left"), ("schedule", "left"),
                      ("GFLOP", "right")):
        table.add_column(col, justify=just, overflow="fold", no_wrap=col in ("kernel", "schedule"))
    for r in rows:
        shapes = " ".join("x".join(map(str, s)) for s in r["shapes"])
        table.add_row(r["name"], r["blocks"], shapes, r["origin"], f"{r['gflop']:.3f}")
    out.print(table)


# ---- commands ---------------------------------------------------------------------------------------------
def cmd_compile(args: argparse.Namespace) -> int:
    if args.list_passes:
        from .passes import PASSES
        from .pipeline import phases
        from .target import resolve_target

        target = resolve_target(args.target or "llvm")
        table = Table(title=f"passes for {target.kind.name}, by phase", title_justify="left")
        for col in ("phase", "pass", "what it does"):
            table.add_column(col)
        for phase in phases(target):
            for name in phase.passes:
                table.add_row(phase.name, name + (" (required)" if PASSES[name].required else ""), PASSES[name].doc)
        out.print(table)
        return 0
    if not args.model:
        raise DlcError("compile needs a MODEL.onnx (or --list-passes)")
    options = _options_from(args)
    output = Path(args.output or Path(args.model).with_suffix(".so").name)
    say = _progress(args.quiet)
    model = api.compile(args.model, options=options, log=say)
    if args.explain:
        print_kernels(model.kernels, f"{len(model.kernels)} kernels, {model.target['key']}")
    say(f"writing {output}")
    model.export(output)
    secs = model.metadata["compile_seconds"]["total"]
    err.print(f"compiled {args.model} for {model.target['key']} in {secs:.1f}s -> {output} "
              f"({output.stat().st_size / 1e6:.1f} MB, {len(model.kernels)} kernels)")
    return 0


def _parse_inputs(specs: Sequence[str], input_names: list[str]) -> dict[str, np.ndarray]:
    feeds = {}
    for spec in specs:
        name, sep, path = spec.rpartition("=")
        if not sep:
            if len(input_names) != 1:
                raise InputError(f"--input {spec}: give NAME=FILE.npy; the model's inputs are {input_names}")
            name, path = input_names[0], spec
        if name in feeds:
            raise InputError(f"--input {name} given twice")
        try:
            feeds[name] = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise InputError(f"--input {name}: no such file {path!r}") from None
        except (ValueError, OSError) as e:
            raise InputError(f"--input {name}: {path!r} is not a .npy array ({e})") from None
        if not isinstance(feeds[name], np.ndarray):
            raise InputError(f"--input {name}: {path!r} holds several arrays (.npz); give one .npy per input")
    return feeds


def cmd_run(args: argparse.Namespace) -> int:
    model = api.load(args.artifact, num_threads=args.threads)
    feeds = _parse_inputs(args.input or [], [t.name for t in model.inputs])
    t0 = time.perf_counter()
    outputs = model.run(feeds)
    ms = (time.perf_counter() - t0) * 1e3
    table = Table(title=f"{model.metadata['model']} on {model.target['key']}, {model.num_threads} threads, "
                        f"{ms:.1f} ms (first run)", title_justify="left")
    for col in ("output", "dtype", "shape", "min", "max", "mean", "first values"):
        table.add_column(col)
    for name, a in outputs.items():
        flat = a.reshape(-1)
        stats = [f"{flat.min():.4g}", f"{flat.max():.4g}", f"{flat.mean():.4g}"] if flat.size and a.dtype.kind in "fiub" \
            else ["", "", ""]
        table.add_row(name, str(a.dtype), str(tuple(a.shape)), *stats, " ".join(f"{v:.4g}" for v in flat[:4]))
    out.print(table)
    if args.output:
        _write_atomic(Path(args.output), lambda tmp: np.savez(tmp, **outputs))
        err.print(f"wrote {len(outputs)} outputs to {args.output}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.suffix == ".so":
        from .runtime import read_metadata

        meta = read_metadata(path)
        if args.json:
            out.print_json(json.dumps(meta))
        else:
            out.print(f"[bold]{path}[/]: dlc artifact of {meta['model']} for {meta['target']['key']}, "
                      f"dlc {meta['versions']['dlc']}, TVM {meta['versions']['tvm']}")
            for kind in ("inputs", "outputs"):
                for t in meta["signature"][kind]:
                    out.print(f"  {kind[:-1]:6} {t['name']}: {t['dtype']} {tuple(t['shape'])}")
            print_kernels(meta.get("kernels", []), "kernels")
        return 0
    from .frontend import load_model, summarize

    summary = summarize(load_model(path, check=False))
    if args.json:
        out.print_json(json.dumps(summary.to_json()))
        return 0 if not summary.unsupported else 1
    out.print(f"[bold]{summary.source}[/]: ONNX IR {summary.ir_version}, opsets "
              + ", ".join(f"{d} {v}" for d, v in summary.opsets.items())
              + (f", producer {summary.producer}" if summary.producer else ""))
    out.print(f"  {summary.num_nodes} nodes, {summary.num_params:,} parameters ({summary.param_bytes / 1e6:.1f} MB)")
    for kind, specs in (("input", summary.inputs), ("output", summary.outputs)):
        for t in specs:
            out.print(f"  {kind:6} {t.name}: {t.dtype} {t.shape_str()}")
    table = Table(title="operators", title_justify="left")
    table.add_column("op")
    table.add_column("count", justify="right")
    table.add_column("dlc")
    for op, n in summary.op_counts.items():
        table.add_row(op, str(n), "[red]unsupported[/]" if op in summary.unsupported else "ok")
    out.print(table)
    if summary.unsupported:
        for op, nodes in summary.unsupported.items():
            out.print(f"[red]unsupported[/] {op}: nodes {', '.join(nodes)}")
        return 1
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from . import tune
    from .tune.report import LiveProgress, plot_curve, results_table

    options = _options_from(args)
    rpc = tune.RPCSettings.parse(args.rpc_tracker, args.rpc_key, args.timeout) if args.rpc_tracker else None
    if args.rpc_key and not args.rpc_tracker:
        raise DlcError("--rpc-key needs --rpc-tracker HOST:PORT")
    config = tune.TuneConfig(trials=args.trials, db=args.db, tasks=args.tasks, rpc=rpc, timeout=args.timeout,
                             batch=args.batch, population=args.population, seed=args.seed)
    report = tune.tune(args.model, options, config, progress=LiveProgress(err), log=_progress(args.quiet),
                       command="dlc " + shlex.join(args.argv))
    out.print(results_table(report))
    if args.plot != "none":
        plot = Path(args.plot or f"{Path(args.model).stem}.{report.key}.tuning.png")
        err.print(f"tuning curve: {plot_curve(report, plot)}")
    err.print(f"records: {report.folder}" + (" (interrupted: rerun the same command to resume)"
                                              if report.interrupted else ""))
    if report.interrupted:
        return 130
    tried = [r for r in report.results if not r.status.startswith("skipped")]
    return 1 if tried and all(r.status.startswith("failed") for r in tried) else 0


def cmd_db(args: argparse.Namespace) -> int:
    from .tune import dbtools

    root = args.db or str(_shipped_logs())
    if args.db_command == "stats":
        rows = dbtools.stats(root, args.target)
        if args.json:
            out.print_json(json.dumps(rows))
            return 0
        table = Table(title=f"tuning databases in {root}", title_justify="left")
        for col in ("target key", "workloads", "records", "valid", "failed", "baselines", "corrupt lines",
                    "other targets", "rehashed", "runs", "last run"):
            table.add_column(col)
        for r in rows:
            key = r["key"] + (" (this machine)" if r["this_machine"] else "")
            table.add_row(key, *(str(r[k]) for k in ("workloads", "records", "valid", "failed", "baselines",
                                                     "corrupt_lines", "foreign_target", "rehashed", "runs",
                                                     "last_run")))
        out.print(table)
    elif args.db_command == "list":
        rows = dbtools.list_workloads(root, args.target)
        if args.json:
            out.print_json(json.dumps(rows))
            return 0
        table = Table(title=f"workloads in {root}", title_justify="left")
        for col in ("target key", "#", "blocks", "shapes", "records", "best us", "GFLOP/s", "untuned us"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(r["key"], str(r["workload"]), r["blocks"], " ".join("x".join(map(str, s)) for s in r["shapes"]),
                          str(r["records"]), f"{r['best_us']:,.1f}" if r["best_us"] else "-",
                          f"{r['gflops']:.1f}" if r["gflops"] else "-",
                          f"{r['baseline_us']:,.1f} {r['baseline']}" if r["baseline_us"] else "-")
        out.print(table)
    elif args.db_command == "merge":
        for key, n in dbtools.merge(args.sources, root).items():
            err.print(f"{key}: {n} records added to {root}")
    elif args.db_command == "prune":
        for key, n in dbtools.prune(root, args.top, args.target).items():
            err.print(f"{key}: dropped {n} records, kept the {args.top} best per workload")
    elif args.db_command == "export":
        for path in dbtools.export(root, args.out, args.top, args.target):
            err.print(f"exported {path}")
    return 0


def _shipped_logs() -> Path:
    from ._builtin import tuning_logs_dir

    return tuning_logs_dir()


# ---- entry point ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlc", description="Compile ONNX models to native code with TVM.")
    parser.add_argument("--version", action="version", version=f"dlc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and TVM's own messages")
        return p

    p = command("compile", "compile an ONNX model into one .so artifact")
    p.add_argument("model", nargs="?", metavar="MODEL.onnx")
    p.add_argument("-o", "--output", metavar="OUT.so", help="artifact path (default: MODEL.so here)")
    _add_compile_options(p)
    p.add_argument("--explain", action="store_true", help="print one row per kernel: blocks, shapes, schedule")
    p.add_argument("--list-passes", action="store_true", help="list the graph passes and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_compile)

    p = command("run", "run an artifact on .npy inputs")
    p.add_argument("artifact", metavar="ARTIFACT.so")
    p.add_argument("-i", "--input", action="append", metavar="NAME=FILE.npy",
                   help="an input array; repeat per input (NAME= may be left out for one-input models)")
    p.add_argument("-o", "--output", metavar="OUT.npz", help="save the outputs, keyed by ONNX output name")
    p.add_argument("--threads", type=int, metavar="N", help="runtime threads (default: all cores)")
    p.set_defaults(func=cmd_run)

    p = command("inspect", "describe an ONNX model (ops, shapes, what dlc cannot import) or a dlc artifact")
    p.add_argument("path", metavar="MODEL.onnx|ARTIFACT.so")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_inspect)

    p = command("tune", "tune a model's kernels with MetaSchedule into a tuning database (see README, Tuning)")
    p.add_argument("model", metavar="MODEL.onnx")
    _add_compile_options(p, skip=("tuning_db", "tuning_dbs"))
    p.add_argument("--trials", type=int, default=64, metavar="N", help="measured candidates per kernel (default 64)")
    p.add_argument("--db", metavar="DIR", help="database root; records go to DIR/<target key>/ "
                   "(default: the shipped tuning_logs/)")
    p.add_argument("--tasks", metavar="PATTERN", help="only kernels whose name matches this glob (or re:REGEX)")
    p.add_argument("--rpc-tracker", metavar="HOST:PORT", help="measure on the machine behind this TVM RPC tracker")
    p.add_argument("--rpc-key", metavar="KEY", help="the key the RPC server registered with")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="seconds allowed per build, per measurement and per RPC step (default 60)")
    p.add_argument("--batch", type=int, default=32, metavar="N", help="candidates per search round (default 32)")
    p.add_argument("--population", type=int, default=512, metavar="N",
                   help="evolutionary search population (default 512)")
    p.add_argument("--seed", type=int, metavar="N", help="seed the search (default: random)")
    p.add_argument("--plot", metavar="FILE.png", help="tuning-curve PNG (default MODEL.<key>.tuning.png; 'none': no plot)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_tune)

    p = command("db", "inspect and maintain tuning databases")
    dbs = p.add_subparsers(dest="db_command", required=True)
    for name, help in (("stats", "per target key: workloads, records, failed and corrupt lines, runs"),
                       ("list", "one row per workload: blocks, shapes, records, best latency"),
                       ("merge", "add the records of other databases (no duplicates)"),
                       ("prune", "keep the K fastest records per workload"),
                       ("export", "write a clean copy: the K best records per workload, renumbered")):
        q = dbs.add_parser(name, help=help, description=help)
        q.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")
        q.add_argument("--db", metavar="DIR", help="database root (default: the shipped tuning_logs/)")
        if name in ("stats", "list", "prune", "export"):
            q.add_argument("--target", metavar="T", help="only this target's records (e.g. llvm, cuda:sm_80)")
        if name in ("stats", "list"):
            q.add_argument("--json", action="store_true", help="machine-readable output")
        if name in ("prune", "export"):
            q.add_argument("--top", type=int, default=1, metavar="K", help="records kept per workload (default 1)")
        if name == "merge":
            q.add_argument("sources", nargs="+", metavar="SRC", help="database roots to merge into --db")
        if name == "export":
            q.add_argument("out", metavar="OUT", help="directory to write OUT/<target key>/ into")
        q.set_defaults(func=cmd_db)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        return args.func(args)
    except DlcError as e:
        if args.verbose:
            traceback.print_exc()
        print(f"dlc: error: {e}", file=sys.stderr)  # plain print: one line, never wrapped
        return e.exit_code
    except KeyboardInterrupt:
        print("dlc: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug in dlc or TVM: still one line unless asked
        if args.verbose:
            traceback.print_exc()
        first = (str(e).strip().splitlines() or [""])[0]
        print(f"dlc: internal error: {type(e).__name__}: {first} (rerun with --verbose for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
