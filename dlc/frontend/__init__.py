"""ONNX in: load and validate a model, import it into Relax, summarize it."""

from .converters import register_converter
from .importer import ImportedModel, import_onnx
from .inspect import ModelSummary, summarize
from .loader import LoadedModel, load_model

__all__ = [
    "ImportedModel", "LoadedModel", "ModelSummary", "import_onnx", "load_model", "register_converter", "summarize",
]
