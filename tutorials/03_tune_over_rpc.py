"""
Tune a model on another machine through TVM's RPC tracker
=========================================================

dlc's hand-written schedules are a good start; MetaSchedule (TVM's auto-scheduler, with its XGBoost cost
model) searches for better ones, kernel by kernel, by *measuring* candidates on the machine that will run
the model. That machine is usually not the one you compile on (a GPU box, a phone), so measurements go
through TVM's RPC tracker: the device runs ``tvm.exec.rpc_server`` and registers with a key, and
``dlc tune --rpc-tracker HOST:PORT --rpc-key KEY`` sends it each candidate to time.

This tutorial plays both sides on one machine (a tracker and a server on loopback), tunes the kernels of
a small convolutional block into a database folder, compiles with that database, and sees the records
used (``--explain`` says ``tuned`` for a kernel whose record beat the hand-written schedule).

Run it with ``python tutorials/03_tune_over_rpc.py``; with ``CI=true`` it tunes one kernel with a handful
of trials (the search is slow on 2 cores: a 64-trial search of one conv takes minutes).
"""

# %%
# A model to tune
# ---------------
# Two 3x3 convolutions with ReLU. dlc fuses each conv with its ReLU into one kernel. (``--winograd off``
# throughout: this tutorial tunes direct convolutions; tutorial 04 is about Winograd.)
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

import dlc

CI = os.environ.get("CI", "").lower() == "true"
TRIALS = 8 if CI else 64
work = Path(os.environ.get("DLC_TUTORIAL_DIR", "out/tutorial03")).resolve()
work.mkdir(parents=True, exist_ok=True)

rng = np.random.default_rng(0)
C = 32
weights = {f"w{i}": (rng.standard_normal((C, C, 3, 3)) * (2 / (9 * C)) ** 0.5).astype(np.float32) for i in (1, 2)}
nodes = [
    helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    helper.make_node("Relu", ["c1"], ["r1"]),
    helper.make_node("Conv", ["r1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    helper.make_node("Relu", ["c2"], ["y"]),
]
graph = helper.make_graph(
    nodes, "block",
    [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, C, 28, 28])],
    [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, C, 28, 28])],
    [numpy_helper.from_array(w, n) for n, w in weights.items()])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
model_path = work / "block.onnx"
onnx.save(model, model_path)

# %%
# The device side: a tracker and a server
# ---------------------------------------
# On a real setup the tracker runs anywhere both machines reach, and the device runs
# ``python -m tvm.exec.rpc_server --tracker HOST:PORT --key KEY``. Here both run on loopback.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


port, key = free_port(), "tutorial-cpu"
logs = work / "rpc-logs"
logs.mkdir(exist_ok=True)
tracker = subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1",
                            "--port", str(port), "--port-end", str(port + 1)],
                           stdout=(logs / "tracker.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True)
server = None


def dlc_cli(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "dlc", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"dlc {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
    return out.stdout + out.stderr


try:
    time.sleep(2)
    server = subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_server", "--tracker", f"127.0.0.1:{port}",
                               "--key", key, "--host", "127.0.0.1"],
                              stdout=(logs / "server.log").open("w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    time.sleep(3)

    # %%
    # Tune through the tracker
    # ------------------------
    # ``dlc tune`` takes the kernels exactly as ``dlc compile`` builds them (same passes, same fusion),
    # measures the hand-written schedule first (the baseline a record must beat), then searches. Records go
    # to ``--db DIR/<target key>/`` as TVM's own JSON database; without ``--db`` they would go to the
    # shipped ``tuning_logs/``. It prints a table of kernels, baseline and best times.
    db = work / "db"
    tasks = ["--tasks", "fused_conv2d*"]
    if CI:
        tasks = ["--tasks", "fused_conv2d_nchwc_relu"]  # the first conv only: a short search
    print(dlc_cli("tune", str(model_path), "--db", str(db), "--trials", str(TRIALS), "--batch", "8",
                  "--population", "64", "--seed", "0", "--rpc-tracker", f"127.0.0.1:{port}", "--rpc-key", key,
                  "--plot", str(work / "curve.png"), "--winograd", "off", *tasks, "-q"))
finally:
    for proc in (server, tracker):
        if proc is not None:
            os.killpg(proc.pid, 9)
            proc.wait()

# %%
# What the database holds
# -----------------------
# ``dlc db stats`` summarizes it; the folder is TVM's JSON database (one workload per kernel, one line per
# measured candidate) plus the baselines and the provenance of the run (command, machine, versions).
print(dlc_cli("db", "stats", "--db", str(db)))
folders = [p for p in db.iterdir() if p.is_dir()]
print(sorted(p.name for p in folders[0].iterdir()))
records = (folders[0] / "database_tuning_record.json").read_text().splitlines()
print(f"{len(records)} measured candidates in {folders[0].name}")
assert records, "the search measured nothing"

# %%
# Compile with the records
# ------------------------
# ``--tuning-db`` adds the database to the shipped one. A record is applied only to a kernel the pipeline
# produces identically, and only if it beat the hand-written schedule in the same run; ``--explain`` shows
# each kernel's origin. With a handful of trials the hand-written schedule may well stay: that is the
# precedence working (user rule > tuned record > hand-written rule > fallback), not a failure.
print(dlc_cli("compile", str(model_path), "--tuning-db", str(db), "--winograd", "off", "--explain",
              "-o", str(work / "block.so")))
compiled = dlc.load(work / "block.so")
origins = {k["name"]: k["origin"] for k in compiled.metadata["kernels"]}
print(json.dumps(origins, indent=1))

# dlc_baselines.json: one line per timing of the untuned schedule (a second line, with the record's timings
# beside it, if a record looked faster and was timed against it side by side).
baselines = [json.loads(line) for line in (folders[0] / "dlc_baselines.json").read_text().splitlines()]
print(f"{len(baselines)} baseline line(s) recorded")

# %%
# Same numbers
# ------------
# Whichever schedule won, the model computes the same function; check against onnxruntime.
import onnxruntime as ort  # noqa: E402

x = rng.standard_normal((1, C, 28, 28)).astype(np.float32)
ours = compiled.run({"x": x})["y"]
ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
print("max abs difference vs onnxruntime:", float(np.abs(ours - ref).max()))
np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)
