"""Measuring on another machine through TVM's RPC tracker and server: settings, a pre-flight check, a runner.

The GPU-box workflow (README, "Tuning"): on the GPU box run ``python -m tvm.exec.rpc_tracker`` and
``python -m tvm.exec.rpc_server --tracker HOST:PORT --key KEY``; here run
``dlc tune model.onnx --target cuda:sm_XX --rpc-tracker HOST:PORT --rpc-key KEY``. Candidates are built here
(nvcc for cuda) and only measured there.

TVM's own RPC path can hang: ``connect_tracker`` retries for a minute, ``TrackerSession.request`` waits
forever for a free server of the key, and ``RPCRunner``'s worker pool has no timeout, so a dead or frozen
server stalls tuning for good (apache/tvm#12330, #15151). dlc therefore checks the tracker, the key and one
real session before tuning, each step bounded by ``timeout``, and gives the runner a pool whose workers are
killed after ``timeout``; a batch in which every measurement failed stops tuning with the first error.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tvm import rpc
from tvm.s_tir import meta_schedule as ms
from tvm.support.popen_pool import PopenPoolExecutor

from ..errors import TuneError

T = TypeVar("T")


@dataclass(frozen=True)
class RPCSettings:
    host: str
    port: int
    key: str
    timeout: float  # seconds, for every step: connect, request a session, one measurement

    @classmethod
    def parse(cls, tracker: str, key: str | None, timeout: float) -> RPCSettings:
        host, sep, port = tracker.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise TuneError(f"bad --rpc-tracker {tracker!r}: expected HOST:PORT, e.g. 192.168.1.20:9190")
        if not key:
            raise TuneError("--rpc-tracker needs --rpc-key KEY (the key the RPC server registered with)")
        return cls(host, int(port), key, timeout)

    @property
    def where(self) -> str:
        return f"RPC tracker {self.host}:{self.port}"

    @property
    def query_hint(self) -> str:
        return f"python -m tvm.exec.query_rpc_tracker --host {self.host} --port {self.port}"

    def config(self) -> ms.runner.RPCConfig:
        return ms.runner.RPCConfig(tracker_host=self.host, tracker_port=self.port, tracker_key=self.key,
                                   session_priority=1, session_timeout_sec=max(1, int(self.timeout)))


def _bounded(fn: Callable[[], T], timeout: float, what: str) -> T:
    """Run ``fn`` in a daemon thread; TuneError if it does not finish within ``timeout`` (never hang)."""
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001  (handed to the caller)
            box["error"] = e

    t = threading.Thread(target=run, daemon=True, name=f"dlc-rpc-{what}")
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TuneError(f"{what}: no answer within {timeout:g}s")
    if "error" in box:
        e = box["error"]
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise TuneError(f"{what}: {first}")
    return box["value"]


def check_tracker(s: RPCSettings) -> dict:
    """Make sure a measurement can happen before tuning starts; return the tracker's summary.

    Raises TuneError within about ``3 * timeout`` naming what is wrong: tracker unreachable or silent, no
    server registered with the key, or a server that does not answer a session.
    """
    try:
        socket.create_connection((s.host, s.port), timeout=s.timeout).close()
    except OSError as e:
        raise TuneError(f"cannot reach the {s.where} within {s.timeout:g}s: {e.strerror or e}; start it with "
                        f"python -m tvm.exec.rpc_tracker --host 0.0.0.0 --port {s.port}") from None
    try:
        summary = _bounded(lambda: rpc.connect_tracker(s.host, s.port).summary(), s.timeout, "tracker summary")
    except TuneError as e:
        raise TuneError(f"the {s.where} accepts connections but does not answer ({e}); is it a TVM tracker?") \
            from None
    keys = [str(item.get("key", "")) for item in summary.get("server_info", [])]
    if not any(k.split(":", 1)[-1] == s.key for k in keys):
        known = sorted({k.split(':', 1)[-1] for k in keys}) or ["none"]
        raise TuneError(f"no RPC server with key {s.key!r} is registered at the {s.where} (keys there: "
                        f"{', '.join(known)}); on the measuring machine run python -m tvm.exec.rpc_server "
                        f"--tracker {s.host}:{s.port} --key {s.key}")

    def session_roundtrip() -> None:
        sess = rpc.connect_tracker(s.host, s.port).request(s.key, priority=1, session_timeout=max(1, int(s.timeout)))
        sess.cpu(0).exist  # noqa: B018  (one real round trip)

    try:
        _bounded(session_roundtrip, s.timeout, f"RPC session with key {s.key!r}")
    except TuneError as e:
        raise TuneError(f"{e}: the server is registered but does not serve (busy, frozen or dead); "
                        f"check it with {s.query_hint}") from None
    return summary


def rpc_runner(s: RPCSettings, evaluator: ms.runner.EvaluatorConfig, max_workers: int = 1) -> ms.runner.RPCRunner:
    """TVM's RPCRunner, with a worker pool that kills a measurement after ``timeout`` seconds."""
    runner = ms.runner.RPCRunner(rpc_config=s.config(), evaluator_config=evaluator, max_workers=max_workers)
    old = runner.pool
    runner.pool = PopenPoolExecutor(max_workers=max_workers, timeout=s.timeout)
    old.shutdown()
    return runner
