"""Models for tests, benchmarks, tutorials and the demo: the light zoo and small nets built in code."""

from .light import BENCH_CNNS, LIGHT_MODELS, light_model, light_model_path, random_input

__all__ = ["BENCH_CNNS", "LIGHT_MODELS", "light_model", "light_model_path", "random_input"]
