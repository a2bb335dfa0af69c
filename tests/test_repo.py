"""The repository's promises: CI runs the README's test command; options and CLI flags match one to one."""

import re
from pathlib import Path

from dlc.cli import build_parser
from dlc.options import CompileOptions

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [ln for b in blocks for ln in b.splitlines() if ln.startswith("python3 -m venv")]


def test_ci_runs_the_readme_test_command():
    setup, test = _readme_commands()
    ci = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln.startswith("python3 -m venv")]
    assert ci == [test]
    assert test.endswith("-m pytest") and "tutorials/01_compile_and_run.py" in setup


def test_every_compile_option_is_a_flag_and_back():
    compile_parser = build_parser()._subparsers._group_actions[0].choices["compile"]
    flags = {a.dest: a.option_strings for a in compile_parser._actions}
    for f in CompileOptions.option_fields():
        assert flags.get(f.name) == [f.metadata["flag"]], f.name


def test_ruff_is_clean():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "dlc", "tests",
                           "tutorials", "schedules", "benchmarks"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_merge_conflict_markers_left():
    import subprocess

    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    marker = re.compile(r"^(<{7} |>{7} |={7}$)", re.M)
    left = [f for f in files if f.endswith((".py", ".md", ".toml", ".cfg", ".txt", ".gitignore", "run"))
            and marker.search((ROOT / f).read_text(errors="replace"))]
    assert not left, f"merge conflict markers in {left}"


def test_every_package_is_installed():
    """pyproject lists dlc's packages by hand (schedules/ and tuning_logs/ are mapped into the package): every
    folder of dlc/ with an __init__.py must be in the list, and every listed dlc.* package must exist."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "dlc").rglob("__init__.py")}
    assert on_disk - listed == set(), "not in pyproject's packages"
    assert {p for p in listed if not p.startswith("dlc._builtin.")} - on_disk == set(), "listed but missing"
