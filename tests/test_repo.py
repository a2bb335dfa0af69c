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
