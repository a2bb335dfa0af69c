"""
Compile and run an ONNX model
=============================

This is the end-to-end tour: take ResNet-50 as ONNX, compile it for this machine's CPU into one ``.so``,
run it from the command line and from Python, and check the numbers against onnxruntime.

Run it with ``python tutorials/01_compile_and_run.py``. With ``CI=true`` it tells the same story on SqueezeNet,
which compiles in a fraction of ResNet-50's time, so the test suite can afford it.
"""

# %%
# The model
# ---------
# The onnx wheel ships the real ResNet-50 graph ("light" zoo) with constant weights. ``dlc.models`` gives it
# random weights, with BatchNorm statistics calibrated so activations look like a trained net's.
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx

import dlc
from dlc.models import model_path, random_input

work = Path(os.environ.get("DLC_TUTORIAL_DIR", "out/tutorial01"))
work.mkdir(parents=True, exist_ok=True)
name = "squeezenet" if os.environ.get("CI") == "true" else "resnet50"
onnx_path = work / f"{name}.onnx"
artifact = work / f"{name}.so"
onnx.save(onnx.load(model_path(name)), onnx_path)
feeds = random_input(onnx.load(onnx_path), seed=0)
(input_name, x), = feeds.items()
np.save(work / "input.npy", x)
print(f"model: {onnx_path}, input {input_name!r} {x.shape}")

# %%
# Command line: inspect, compile, run
# -----------------------------------
# ``dlc inspect`` needs no compilation; ``dlc compile`` writes one artifact holding code and weights;
# ``dlc run`` feeds it ``.npy`` files and saves the outputs, keyed by ONNX output name.
dlc_cmd = [sys.executable, "-m", "dlc"]
subprocess.run([*dlc_cmd, "inspect", str(onnx_path)], check=True)
subprocess.run([*dlc_cmd, "compile", str(onnx_path), "--target", "llvm", "-o", str(artifact)],
               check=True)
subprocess.run([*dlc_cmd, "run", str(artifact), "--input", f"{input_name}={work / 'input.npy'}",
                "--output", str(work / "outputs.npz")], check=True)

# %%
# Python API
# ----------
# ``dlc.load`` opens the same artifact; ``run`` takes and returns dicts keyed by ONNX names.
model = dlc.load(artifact)
print(model)
outputs = model.run(feeds)
cli_outputs = np.load(work / "outputs.npz")
for name, value in outputs.items():
    assert np.array_equal(value, cli_outputs[name]), name

# %%
# Same numbers as onnxruntime
# ---------------------------
import onnxruntime as ort  # noqa: E402

session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
reference = session.run(None, feeds)
for (name, value), ref in zip(outputs.items(), reference):
    err = float(np.abs(value - ref).max())
    print(f"{name}: max abs difference to onnxruntime {err:.2e}")
    assert err <= 1e-4, f"{name} differs from onnxruntime by {err}"
print("top-5 classes:", np.argsort(-next(iter(outputs.values()))[0])[:5].tolist())
