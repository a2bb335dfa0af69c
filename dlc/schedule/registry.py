"""The schedule-rule registry: who may schedule a kernel, and in what order they are asked.

A rule is a function ``(func: PrimFunc, target: Target) -> Schedule | None`` (``None`` = "not mine"), in the
manner of TVM's dlight. Rules are registered per target kind ("llvm", "cuda") with an *origin* and an
*order*; for each kernel the first rule that answers wins, asked in this precedence:

    user rule  >  tuned record  >  hand-written rule  >  fallback

(tuned records are not rules: ``apply.py`` consults the database between the first two groups). Within a
group, lower ``order`` is asked first, then registration order.

Users register from Python with the ``@rule`` decorator, or put such files in a directory and pass it to
``dlc compile --schedules DIR``. dlc's own rules live in ``schedules/<kind>/`` and are registered by the same
decorator; they load as origin "hand" because ``load_builtin_rules`` imports them under that origin.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import importlib
import importlib.util
import itertools
import pkgutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tvm import s_tir, tirx
from tvm.target import Target

from ..errors import DlcError

RuleFn = Callable[[tirx.PrimFunc, Target], "s_tir.Schedule | None"]
ORIGINS = ("user", "hand", "fallback")  # rule origins, in precedence order ("tuned" sits between user and hand)
TARGET_KINDS = ("llvm", "cuda")

_current_origin: contextvars.ContextVar[str] = contextvars.ContextVar("dlc_rule_origin", default="user")


@dataclass(frozen=True)
class Rule:
    name: str
    target: str  # target kind
    fn: RuleFn
    origin: str
    order: int
    seq: int  # registration order, the tie-breaker

    @property
    def label(self) -> str:
        return f"{self.origin}:{self.name}"

    def __call__(self, func: tirx.PrimFunc, target: Target) -> s_tir.Schedule | None:
        return self.fn(func, target)


class Registry:
    def __init__(self) -> None:
        self._rules: list[Rule] = []
        self._seq = itertools.count()

    def add(self, fn: RuleFn, *, target: str, name: str, order: int, origin: str) -> Rule:
        if target not in TARGET_KINDS:
            raise DlcError(f"schedule rule {name!r}: target must be one of {TARGET_KINDS}, got {target!r}")
        if origin not in ORIGINS:
            raise DlcError(f"schedule rule {name!r}: origin must be one of {ORIGINS}, got {origin!r}")
        # Re-registering a name (a file loaded twice, a rule edited in a notebook) replaces the old rule.
        self._rules = [r for r in self._rules if not (r.name == name and r.target == target and r.origin == origin)]
        r = Rule(name, target, fn, origin, order, next(self._seq))
        self._rules.append(r)
        return r

    def remove(self, name: str, *, target: str | None = None) -> None:
        self._rules = [r for r in self._rules if not (r.name == name and target in (None, r.target))]

    def rules(self, target: str, origin: str) -> list[Rule]:
        return sorted((r for r in self._rules if r.target == target and r.origin == origin),
                      key=lambda r: (r.order, r.seq))

    def all(self) -> list[Rule]:
        return list(self._rules)


REGISTRY = Registry()


def rule(target: str, *, name: str | None = None, order: int = 100):
    """Decorator registering ``fn(func, target) -> Schedule | None`` as a schedule rule for ``target``.

    >>> @dlc.schedule.rule("llvm", order=10)
    ... def my_dense(func, target):
    ...     if "dense" not in str(func): return None
    ...     sch = tvm.s_tir.Schedule(func); ...; return sch
    """

    def wrap(fn: RuleFn) -> RuleFn:
        REGISTRY.add(fn, target=target, name=name or fn.__name__, order=order, origin=_current_origin.get())
        return fn

    return wrap


@contextlib.contextmanager
def _origin(origin: str) -> Iterator[None]:
    token = _current_origin.set(origin)
    try:
        yield
    finally:
        _current_origin.reset(token)


def load_rules_from_dir(directory: str | Path, origin: str = "user") -> list[Rule]:
    """Import every ``*.py`` in ``directory`` (sorted); the rules they register get ``origin``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DlcError("not a directory of schedule rules", where=str(directory))
    before = set(map(id, REGISTRY.all()))
    for path in sorted(directory.glob("*.py")):
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
        mod_name = f"dlc_user_rules_{digest}_{path.stem}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            with _origin(origin):
                spec.loader.exec_module(module)
        except Exception as e:
            del sys.modules[mod_name]
            raise DlcError(f"cannot load schedule rules: {type(e).__name__}: {e}", where=str(path)) from e
    return [r for r in REGISTRY.all() if id(r) not in before]


_builtin_loaded: set[str] = set()


def load_builtin_rules(target: str) -> None:
    """Import dlc's hand-written rules for a target kind (``schedules/<kind>/``), once."""
    if target in _builtin_loaded:
        return
    _builtin_loaded.add(target)
    package = importlib.import_module(f"dlc._builtin.schedules.{target}")
    with _origin("hand"):
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package.__name__}.{info.name}")
