"""dlc's built-in data: the hand-written rules (``schedules/``) and shipped tuning records (``tuning_logs/``).

Both live at the top of the repository. An install maps them to ``dlc._builtin.schedules`` and
``dlc._builtin.tuning_logs`` (see ``[tool.setuptools] package-dir``); in a bare source checkout the repository
root is added to this package's path so the same names resolve there.
"""

from pathlib import Path

_repo_root = Path(__file__).resolve().parents[2]
if (_repo_root / "schedules").is_dir() and not (Path(__file__).parent / "schedules").is_dir():
    __path__.append(str(_repo_root))  # noqa: F821  (a package's __path__)


def tuning_logs_dir() -> Path:
    """The shipped tuning records (read-only in an install)."""
    from . import tuning_logs

    return Path(next(iter(tuning_logs.__path__)))
