"""dlc as an ONNX backend (``onnx.backend.base.Backend``), and the ONNX backend conformance suite run against it.

``backend.py`` the Backend over ``dlc.compile``/``CompiledModel.run`` · ``cases.py`` the 2033 cases in the
onnx wheel · ``run.py`` one case in-process · ``pool.py`` many cases in crash-isolated worker processes ·
``compare.py`` onnx's output comparison · ``suite.py`` the command (``python -m dlc.onnx_backend.suite``) ·
``expected_failures.txt`` what dlc does not pass yet, one reason each.
"""

from .backend import DlcBackend, DlcBackendRep, prepare, run_model, run_node, supports_device

__all__ = ["DlcBackend", "DlcBackendRep", "prepare", "run_model", "run_node", "supports_device"]
