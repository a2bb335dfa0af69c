"""Export the small PyTorch models the frontend tests use, once; the .onnx files are committed.

torch is not a dlc dependency. Run this in a separate environment:

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch==2.13.0 onnx==1.23.2 onnxscript numpy
    /tmp/torchenv/bin/python tests/data/export_torch_models.py

Each model is exported at opset 17 with PyTorch's TorchScript exporter (what most deployed ONNX files came from),
with fixed random weights (seeded), and stays well under 2 MB:

* ``resnet_dynbatch.onnx``   a small ResNet (basic blocks, BN, global pool, FC), batch dim symbolic ("N")
* ``gru_lstm_seq.onnx``      embedding-free sequence model: 2-layer bidirectional GRU -> LSTM -> linear head,
                             batch symbolic, sequence length 12
* ``transformer_encoder.onnx`` nn.TransformerEncoder (2 layers, d_model 64, 4 heads) with batch *and* sequence
                             symbolic: the export is full of Shape/Gather/Concat/Reshape chains. The TorchScript
                             exporter bakes the traced sequence length into attention's reshapes, so this one
                             uses the torch.export-based exporter (``dynamo=True``, needs ``onnxscript``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

OUT = Path(__file__).resolve().parent
OPSET = 17


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class SmallResNet(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layers = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2), Block(64, 64, 1))
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(8, 16, num_layers=2, batch_first=True, bidirectional=True)
        self.lstm = nn.LSTM(32, 24, batch_first=True)
        self.head = nn.Linear(24, 5)

    def forward(self, x):
        y, _ = self.gru(x)
        y, (h, _) = self.lstm(y)
        return self.head(y), h


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(64, 4, dim_feedforward=128, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(64, 8)

    def forward(self, x):
        return self.head(self.encoder(x))


def randomize_bn(model: nn.Module) -> None:
    """Give BatchNorm non-trivial statistics, so inference is not the identity."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def export(model: nn.Module, args: tuple, name: str, inputs: list[str], outputs: list[str], dynamic: dict,
           dynamo: bool = False) -> None:
    model.eval()
    path = OUT / name
    with torch.no_grad():
        if dynamo:
            shapes = {inputs[0]: {axis: torch.export.Dim(d) for axis, d in dynamic[inputs[0]].items()}}
            torch.onnx.export(model, args, str(path), opset_version=OPSET, input_names=inputs, output_names=outputs,
                              dynamic_shapes=shapes, dynamo=True, external_data=False)
        else:
            torch.onnx.export(model, args, str(path), opset_version=OPSET, input_names=inputs, output_names=outputs,
                              dynamic_axes=dynamic, dynamo=False)
    print(f"{path.name}: {path.stat().st_size} bytes")


def main() -> None:
    torch.backends.mha.set_fastpath_enabled(False)  # the fused fast path has no ONNX export
    torch.manual_seed(0)
    resnet = SmallResNet()
    randomize_bn(resnet)
    export(resnet, (torch.randn(2, 3, 32, 32),), "resnet_dynbatch.onnx", ["x"], ["logits"],
           {"x": {0: "N"}, "logits": {0: "N"}})
    torch.manual_seed(0)
    export(Recurrent(), (torch.randn(2, 12, 8),), "gru_lstm_seq.onnx", ["x"], ["y", "h"],
           {"x": {0: "N"}, "y": {0: "N"}, "h": {1: "N"}})
    torch.manual_seed(0)
    export(Encoder(), (torch.randn(2, 10, 64),), "transformer_encoder.onnx", ["x"], ["y"],
           {"x": {0: "N", 1: "S"}, "y": {0: "N", 1: "S"}}, dynamo=True)


if __name__ == "__main__":
    main()
