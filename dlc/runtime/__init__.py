"""Load, run and time compiled models; the artifact format."""

from .artifact import read_metadata
from .model import CompiledModel, load
from .threads import num_threads, set_num_threads

__all__ = ["CompiledModel", "load", "num_threads", "read_metadata", "set_num_threads"]
