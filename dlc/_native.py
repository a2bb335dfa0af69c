"""Quiet TVM's C++ logging where it only adds noise.

TVM 0.27 writes ``Warning: Scope Saving:`` / ``Scope Loaded:`` to the process's stderr (C++ ``LOG(WARNING)``)
for every VM executable it saves or loads, ``BlockBuilder destroyed with remaining blocks!`` whenever an
error unwinds through a pass (dlc reports the error itself, in one line), and warnings meant for TVM's own
developers (``Fast mode segfaults when there are out-of-bounds indices``, ``Detected pow(x, y) where y >=
3``) while it imports and lowers. Python's ``sys.stderr`` cannot catch that, so ``quiet_tvm_logs``
redirects file descriptor 2 for the duration and passes through whatever else was written: TVM's warnings
only after ``show_tvm_warnings()`` (``dlc --verbose``), the first kind never. Should the process die
meanwhile, Python's fault handler still writes to the real stderr.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import re
import sys
import tempfile
from collections.abc import Iterator

_NOISE = ("Warning: Scope Saving:", "Warning: Scope Loaded:", "Warning: BlockBuilder destroyed with remaining blocks")
_TVM_WARNING = re.compile(r"^\[\d\d:\d\d:\d\d\] \S+:\d+: Warning: ")  # "[23:40:01] /project/x.h:12: Warning: ..."
_show_warnings = False


def show_tvm_warnings(show: bool = True) -> None:
    """Let TVM's own warnings through ``quiet_tvm_logs`` (``dlc --verbose``)."""
    global _show_warnings
    _show_warnings = show


def _noise(line: str) -> bool:
    return any(n in line for n in _NOISE) or (not _show_warnings and bool(_TVM_WARNING.match(line)))


@contextlib.contextmanager
def quiet_tvm_logs() -> Iterator[None]:
    fd = 2  # where TVM's C++ writes, whatever Python's sys.stderr has been replaced with (pytest, Jupyter)
    with contextlib.suppress(AttributeError, OSError, ValueError):
        sys.stderr.flush()
    try:
        saved = os.dup(fd)
    except OSError:  # no descriptor 2 at all (a daemon): nothing to quiet
        yield
        return
    had_faulthandler = faulthandler.is_enabled()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), fd)
        faulthandler.enable(file=saved)  # a segfault in here must not die silently into the temp file
        try:
            yield
        finally:
            with contextlib.suppress(AttributeError, OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, fd)
            if had_faulthandler:
                faulthandler.enable(file=fd)
            else:
                faulthandler.disable()
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode(errors="replace").splitlines(keepends=True):
                if not _noise(line):
                    sys.stderr.write(line)
