"""Run a risky computation in a forked child, bounded in time and memory, so that the worst it can do to dlc
is to fail.

ONNX shape inference with data propagation is such a computation: on a model that asks for it (a ``Range``
to 2^40 feeding a ``Cast``, a ``Tile`` of a shape tensor, ...) onnx materializes every propagated value,
for hours and terabytes; and onnx's C++ has had crashes on malformed graphs. Forking costs a few
milliseconds (the child shares the parent's memory until it writes), so dlc does it for every model.

``run_bounded(work, seconds=..., extra_memory=...)`` calls ``work(emit)`` in the child; every ``emit(bytes)``
is a result handed back to the parent, in order. It returns those results and, if the child did not finish
cleanly, a ``Failure`` saying how it ended: ``error`` (an exception, with its message), ``memory`` (out of
the allowance), ``timeout`` or ``crash`` (killed by a signal). Where ``os.fork`` does not exist, ``work``
runs in-process, unbounded.
"""

from __future__ import annotations

import os
import resource
import select
import signal
import struct
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

_RESULT, _ERROR, _MEMORY = b"R", b"E", b"M"


@dataclass
class Failure:
    kind: str  # error, memory, timeout, crash
    detail: str = ""


def _address_space_now() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _write_frame(fd: int, tag: bytes, payload: bytes) -> None:
    data = tag + struct.pack("<Q", len(payload)) + payload
    while data:
        data = data[os.write(fd, data):]


def _child(work: Callable[[Callable[[bytes], None]], None], fd: int, seconds: float, extra_memory: int) -> None:
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the parent may have a Python handler (pytest-timeout)
    signal.alarm(max(1, int(seconds) + 1))
    now = _address_space_now()
    if now is not None:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = now + extra_memory
        if soft != resource.RLIM_INFINITY:
            limit = min(limit, soft)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        work(lambda payload: _write_frame(fd, _RESULT, payload))
    except MemoryError:
        _write_frame(fd, _MEMORY, b"")
    except Exception as e:
        _write_frame(fd, _ERROR, f"{e}".encode(errors="replace") or type(e).__name__.encode())


def _read_frames(buf: bytes) -> list[tuple[bytes, bytes]]:
    frames, i = [], 0
    while i + 9 <= len(buf):
        (n,) = struct.unpack_from("<Q", buf, i + 1)
        if i + 9 + n > len(buf):
            break
        frames.append((buf[i:i + 1], buf[i + 9:i + 9 + n]))
        i += 9 + n
    return frames


def run_bounded(work: Callable[[Callable[[bytes], None]], None], *, seconds: float,
                extra_memory: int) -> tuple[list[bytes], Failure | None]:
    if not hasattr(os, "fork"):
        results: list[bytes] = []
        work(results.append)
        return results, None
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    with warnings.catch_warnings():  # Python 3.12+ warns about forking a threaded process; the child runs no
        warnings.simplefilter("ignore", DeprecationWarning)  # other thread's code, only ``work``
        pid = os.fork()
    if pid == 0:
        status = 0
        try:
            os.close(r)
            _child(work, w, seconds, extra_memory)
        except BaseException:
            status = 1
        finally:
            os._exit(status)  # no atexit handlers, no flushing of the parent's buffers
    os.close(w)
    buf, timed_out = bytearray(), False
    deadline = time.monotonic() + seconds + 5  # the child's alarm should fire first; this is the backstop
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                timed_out = True
                break
            ready, _, _ = select.select([r], [], [], left)
            if ready:
                chunk = os.read(r, 1 << 20)
                if not chunk:
                    break
                buf += chunk
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    frames = _read_frames(bytes(buf))
    results = [payload for tag, payload in frames if tag == _RESULT]
    last = frames[-1][0] if frames else None
    if last == _ERROR:
        return results, Failure("error", frames[-1][1].decode(errors="replace"))
    if last == _MEMORY:
        return results, Failure("memory")
    if timed_out or (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGALRM):
        return results, Failure("timeout")
    if os.WIFSIGNALED(status):
        try:
            name = signal.Signals(os.WTERMSIG(status)).name
        except ValueError:
            name = f"signal {os.WTERMSIG(status)}"
        return results, Failure("crash", name)
    if os.WEXITSTATUS(status) != 0:
        return results, Failure("crash", f"exit {os.WEXITSTATUS(status)}")
    return results, None
