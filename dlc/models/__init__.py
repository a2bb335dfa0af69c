"""Models for tests, benchmarks, tutorials and the demo: the light zoo and benchmark nets built in code.

    from dlc.models import model_path, random_input
    path = model_path("resnet50")            # cached randomized light-zoo ResNet-50
    feeds = random_input(onnx.load(path))
"""

from .light import LIGHT_MODELS, random_input
from .zoo import ALL_MODELS, BENCH_CNNS, BENCH_MODELS, BUILT, load, model_path

__all__ = ["ALL_MODELS", "BENCH_CNNS", "BENCH_MODELS", "BUILT", "LIGHT_MODELS", "load",
           "model_path", "random_input"]
