"""CompileOptions: every knob of ``dlc.compile``, one field per ``dlc compile`` flag.

The CLI builds its flags *from these fields* (``flag``, ``help``, ``parse`` in each field's metadata), so the
two cannot drift apart: a new option is a new field here and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, dataclass, field, fields

from .errors import DlcError
from .signature import Dim


def parse_input_shape(text: str) -> tuple[str, tuple[Dim, ...]]:
    """``NAME=1,3,224,224`` (a dim may be a name, e.g. ``N``, to keep it symbolic) -> (name, dims)."""
    name, sep, dims = text.rpartition("=")
    if not sep or not name or not dims:
        raise DlcError(f"bad --input-shape {text!r}: expected NAME=d0,d1,... e.g. data=1,3,224,224")
    out: list[Dim] = []
    for d in dims.split(","):
        d = d.strip()
        if re.fullmatch(r"\d+", d):
            out.append(int(d))
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", d):
            out.append(d)
        else:
            raise DlcError(f"bad --input-shape {text!r}: dim {d!r} is neither a non-negative int nor a name")
    return name, tuple(out)


def _opt(flag: str, help: str, *, default=MISSING, default_factory=MISSING, parse=None, repeat=False,
         metavar=None, choices=None, action=None):
    meta = {"flag": flag, "help": help, "parse": parse, "repeat": repeat, "metavar": metavar, "choices": choices,
            "action": action}  # action: "store_false" for a --no-X flag of a bool field
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class CompileOptions:
    target: str = _opt("--target", "llvm (this CPU), llvm:<cpu>, cuda, cuda:sm_XX, or a TVM JSON target dict",
                       default="llvm", metavar="T")
    input_shapes: dict[str, tuple[Dim, ...]] = _opt(
        "--input-shape", "fix an input's shape, NAME=1,3,224,224 (a name keeps a dim symbolic); repeatable",
        default_factory=dict, parse=parse_input_shape, repeat=True, metavar="NAME=DIMS")
    schedules: tuple[str, ...] = _opt(
        "--schedules", "a directory of Python schedule rules to use before dlc's own; repeatable",
        default=(), repeat=True, metavar="DIR")
    disable_passes: tuple[str, ...] = _opt(
        "--disable-pass", "skip a graph pass by name (see --list-passes); repeatable",
        default=(), repeat=True, metavar="NAME")
    tuning_db: bool = _opt("--no-tuning-db", "apply no tuning records: hand-written schedules only",
                           default=True, action="store_false")
    tuning_dbs: tuple[str, ...] = _opt(
        "--tuning-db", "apply this tuning database's records for the target (a dlc tune --db DIR), besides the "
        "shipped tuning_logs/; repeatable", default=(), repeat=True, metavar="DIR")
    dump_ir: str | None = _opt("--dump-ir", "write the IR after each pipeline phase to DIR", default=None,
                               metavar="DIR")
    winograd: str = _opt("--winograd", "Winograd for 3x3 stride-1 convs: auto (per layer, by cost), on, off",
                         default="auto", choices=("auto", "on", "off"), metavar="MODE")

    @classmethod
    def option_fields(cls):
        return [f for f in fields(cls) if "flag" in f.metadata]
