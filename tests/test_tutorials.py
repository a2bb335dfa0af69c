"""Every tutorial runs as a user runs it, in CI's fast mode, and the README links it.

Each ``tutorials/NN_*.py`` is run in its own process with ``CI=true`` (tutorials use smaller models and
fewer trials then), in a temporary folder, against this checkout's dlc, with a timeout
(``DLC_TUTORIAL_TIMEOUT`` seconds, default 900). A new tutorial is picked up by its file name alone.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
TIMEOUT = float(os.environ.get("DLC_TUTORIAL_TIMEOUT", 900))


def test_tutorials_exist_and_read_as_stories():
    assert len(TUTORIALS) >= 2
    for path in TUTORIALS:
        text = path.read_text()
        # sphinx-gallery: a docstring opening with a title underlined by '=', then '# %%' sections
        assert re.match(r'"""\n(.+)\n=+\n', text), f"{path.name}: no title docstring"
        assert text.count("# %%") >= 2, f"{path.name}: no '# %%' sections"


def test_readme_links_every_tutorial():
    readme = (ROOT / "README.md").read_text()
    missing = [p.name for p in TUTORIALS if f"tutorials/{p.name}" not in readme]
    assert not missing, f"README.md does not link {missing}"


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs_in_ci_mode(path, tmp_path):
    env = {**os.environ, "CI": "true", "DLC_TUTORIAL_DIR": str(tmp_path / "work"), "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    try:
        proc = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        pytest.fail(f"{path.name} did not finish in {TIMEOUT:.0f} s; last output:\n{out[-3000:]}")
    assert proc.returncode == 0, f"{path.name} failed:\n{(proc.stdout + proc.stderr)[-4000:]}"
