"""The onnx wheel's light zoo (random weights, calibrated BN) against onnxruntime, and compiled for cuda."""

import re

import numpy as np
import onnx
import pytest
from helpers import ort_run

import dlc
from dlc.models import LIGHT_MODELS, model_path, random_input

# The largest models take minutes; they run with -m slow.
SLOW = {"vgg19", "bvlc_alexnet", "zfnet512", "densenet121", "inception_v2"}


def _marks(names):
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in names]


@pytest.mark.parametrize("name", _marks(LIGHT_MODELS))
def test_light_model_matches_onnxruntime(name):
    path = model_path(name)
    model = onnx.load(path)
    feeds = random_input(model, seed=7)
    compiled = dlc.compile(path, "llvm")
    (want,) = ort_run(model, feeds)
    (out,) = compiled.run(feeds).values()
    assert np.abs(out - want).max() <= 1e-4, f"{name}: max abs error {np.abs(out - want).max():.2e}"
    # Every conv, dense and matmul kernel has a real schedule (issue 4: no fallback rows in --explain).
    heavy = [k for k in compiled.kernels if re.search(r"conv|matmul|dense|winograd", k["blocks"])]
    assert heavy and not [k["name"] for k in heavy if k["origin"].startswith("fallback")]


@pytest.mark.parametrize("name", _marks(LIGHT_MODELS))
def test_light_model_compiles_for_cuda(name, tmp_path):
    model = dlc.compile(model_path(name), "cuda:sm_80")
    assert model.metadata["cuda"]["fatbin_bytes"] > 0
    assert all(k["origin"] != "none" for k in model.kernels)
    model.export(tmp_path / f"{name}.so")
