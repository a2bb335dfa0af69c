"""Models exported from PyTorch at opset 17 (tests/data, made by export_torch_models.py) against onnxruntime.

One compile each, run at several batch sizes (and sequence lengths): a symbolic dim stays symbolic through the
pipeline, so one artifact serves them all. Tolerances: rtol/atol 1e-4 (float32, different summation orders).
"""

from pathlib import Path

import numpy as np
import onnx
import pytest

import dlc
from tests.helpers import ort_run

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def compiled(request):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = (onnx.load(DATA / f"{name}.onnx"), dlc.compile(DATA / f"{name}.onnx"))
        return cache[name]
    return get


def _check(model, compiled_model, feeds):
    ours = compiled_model.run(feeds)
    ref = ort_run(model, feeds)
    for out, expected in zip(model.graph.output, ref):
        np.testing.assert_allclose(ours[out.name], expected, rtol=1e-4, atol=1e-4, err_msg=out.name)


@pytest.mark.parametrize("batch", [1, 2, 8])
def test_dynamic_batch_resnet_compiles_once_and_runs_at_any_batch(compiled, batch):
    model, cm = compiled("resnet_dynbatch")
    assert [str(d) for d in cm.inputs[0].shape][0] == "N"  # symbolic in the artifact
    x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
    _check(model, cm, {"x": x})


@pytest.mark.parametrize("batch", [1, 3])
def test_gru_lstm_sequence_model(compiled, batch):
    model, cm = compiled("gru_lstm_seq")
    x = np.random.default_rng(batch).standard_normal((batch, 12, 8)).astype(np.float32)
    _check(model, cm, {"x": x})


@pytest.mark.parametrize("batch,seq", [(1, 10), (2, 7), (4, 16)])
def test_transformer_encoder_with_symbolic_batch_and_sequence(compiled, batch, seq):
    model, cm = compiled("transformer_encoder")
    x = np.random.default_rng(seq).standard_normal((batch, seq, 64)).astype(np.float32)
    _check(model, cm, {"x": x})
