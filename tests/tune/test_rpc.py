"""Tuning through TVM's RPC tracker and server, on loopback with llvm; dead, silent and frozen servers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import onnx
import pytest
from helpers import conv_model
from tvm import rpc

from dlc.errors import TuneError
from dlc.target import host_target, target_key
from dlc.tune import RPCSettings, TuneConfig, tune
from dlc.tune.database import TuningDatabase
from dlc.tune.rpc import check_tracker

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    """A TVM RPC process in its own session (so its popen workers die with it: killpg)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", *args], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGCONT)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _registered(port: int, key: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            keys = [i["key"] for i in rpc.connect_tracker("127.0.0.1", port).summary()["server_info"]]
            if any(k.endswith(":" + key) for k in keys):
                return
        except Exception:
            pass
        time.sleep(0.5)
    raise AssertionError(f"no server with key {key} registered within {timeout}s")


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    logs = tmp_path_factory.mktemp("rpc")
    port = _free_port()
    proc = _start(["tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(port), "--port-end", str(port + 1)],
                  logs / "tracker.log")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError((logs / "tracker.log").read_text()) from None
                time.sleep(0.3)
        yield {"port": port, "logs": logs}
    finally:
        _stop(proc)


def _server(tracker: dict, key: str) -> subprocess.Popen:
    port = _free_port()
    log = tracker["logs"] / f"server-{key}.log"
    proc = _start(["tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(port), "--port-end", str(port + 1),
                   "--tracker", f"127.0.0.1:{tracker['port']}", "--key", key], log)
    try:
        _registered(tracker["port"], key)
    except AssertionError:
        _stop(proc)
        raise
    return proc


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    onnx.save(conv_model(c=4, k=8, hw=8), path)
    return path


def test_tuning_measures_through_the_tracker_on_loopback(tracker, tiny, tmp_path):
    server = _server(tracker, "loopback-cpu")
    try:
        settings = RPCSettings("127.0.0.1", tracker["port"], "loopback-cpu", timeout=120)
        report = tune(str(tiny), config=TuneConfig(trials=2, db=tmp_path, rpc=settings, batch=2, population=32,
                                                   seed=3, tasks="fused_conv2d*"))
    finally:
        _stop(server)
    (r,) = report.results
    assert r.status.startswith("tuned") and r.trials_run == 2 and r.best_us and r.baseline_us
    db = TuningDatabase(tmp_path / target_key(host_target()), target_key(host_target()))
    assert len(db.records) == 3 and all(rec.valid for rec in db.records)  # 2 searched + the rule's schedule
    assert len(db.baselines) in (1, 2)  # + the paired confirmation if a record looked faster
    log = (tracker["logs"] / "server-loopback-cpu.log").read_text()
    assert "load_module" in log  # the candidates really ran in the server


def test_nothing_listening_is_a_clear_error_at_once(tiny, tmp_path):
    settings = RPCSettings("127.0.0.1", _free_port(), "k", timeout=5)
    t0 = time.monotonic()
    with pytest.raises(TuneError, match=r"cannot reach the RPC tracker 127\.0\.0\.1:\d+ within 5s"):
        tune(str(tiny), config=TuneConfig(trials=2, db=tmp_path, rpc=settings))
    assert time.monotonic() - t0 < 30


def test_a_silent_tracker_times_out(tmp_path):
    """Something accepts connections and never answers: a clear message within the timeout, not a hang."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])  # keep it open, say nothing
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        settings = RPCSettings("127.0.0.1", listener.getsockname()[1], "k", timeout=3)
        t0 = time.monotonic()
        with pytest.raises(TuneError, match="accepts connections but does not answer"):
            check_tracker(settings)
        assert time.monotonic() - t0 < 10
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        listener.close()


def test_no_server_with_the_key(tracker):
    settings = RPCSettings("127.0.0.1", tracker["port"], "nobody-has-this-key", timeout=5)
    with pytest.raises(TuneError, match="no RPC server with key 'nobody-has-this-key' is registered"):
        check_tracker(settings)


def test_a_frozen_server_times_out(tracker):
    """A server that registered and then stopped answering (SIGSTOP): the check says so within the timeout."""
    server = _server(tracker, "frozen")
    try:
        os.killpg(server.pid, signal.SIGSTOP)
        settings = RPCSettings("127.0.0.1", tracker["port"], "frozen", timeout=3)
        t0 = time.monotonic()
        with pytest.raises(TuneError, match="registered but does not serve"):
            check_tracker(settings)
        assert time.monotonic() - t0 < 15
    finally:
        _stop(server)


def test_bad_tracker_address():
    with pytest.raises(TuneError, match="expected HOST:PORT"):
        RPCSettings.parse("localhost", "k", 5)
    with pytest.raises(TuneError, match="needs --rpc-key"):
        RPCSettings.parse("localhost:9190", None, 5)
