"""A fuzz worker: a child process that runs ``dlc`` commands in-process, one at a time, on the parent's word.

Importing TVM takes seconds, so a worker imports it once and runs many commands through ``dlc.cli.main`` —
the very function the ``dlc`` executable calls — with file descriptors 1 and 2 pointed at per-command files,
so that what TVM's C++ core prints (warnings, ``ICHECK`` messages, a dying process's last words) is captured
too. A signal that kills the worker kills only the worker: the parent sees it and counts a crash.

Protocol (over a ``multiprocessing`` pipe): the worker says ``"ready"`` once dlc is imported; then the
parent sends ``(argv, stdout_path, stderr_path)`` and the worker answers ``(exit_code, exception_class,
exception_message, seconds)``, until ``None`` asks it to exit.
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import resource
import sys
import time


def _wrap_commands(cli, seen: dict) -> None:
    """Record the class of whatever escapes a command; ``cli.main`` still handles it exactly as usual."""

    def wrap(fn):
        def cmd(args):
            try:
                return fn(args)
            except BaseException as e:
                seen["class"], seen["message"] = type(e).__name__, str(e)[:500]
                raise

        return cmd

    for name in ("cmd_compile", "cmd_inspect", "cmd_run"):
        setattr(cli, name, wrap(getattr(cli, name)))


_libc = ctypes.CDLL(None)


def _flush_all() -> None:
    """Python's buffers and C's (``printf`` from a C++ library sits in libc's stdout buffer until flushed)."""
    sys.stdout.flush()
    sys.stderr.flush()
    _libc.fflush(None)


def _run_cli(cli, argv: list[str], out_path: str, err_path: str, seen: dict) -> int:
    _flush_all()
    saved = os.dup(1), os.dup(2)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            return cli.main(argv)
        except SystemExit as e:  # argparse
            return e.code if isinstance(e.code, int) else 2
        finally:
            _flush_all()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def worker_main(conn, niceness: int, memory_limit: int | None) -> None:
    if niceness:
        os.nice(niceness)
    if memory_limit:  # a model that slips past dlc's size limits must not take the shared machine down
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash is counted, not dumped (which takes seconds)
    os.environ.setdefault("TVM_NUM_THREADS", "1")
    faulthandler.enable(file=sys.__stderr__, all_threads=False)  # on SIGSEGV/SIGABRT: where, into fd 2
    from dlc import cli

    seen: dict = {}
    _wrap_commands(cli, seen)
    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg is None:
            return
        argv, out_path, err_path = msg
        seen.clear()
        t0 = time.perf_counter()
        code = _run_cli(cli, argv, out_path, err_path, seen)
        conn.send((code, seen.get("class"), seen.get("message"), time.perf_counter() - t0))
