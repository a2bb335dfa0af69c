"""The fuzzer: a fixed-seed run ends every case in success or a one-line DlcError, and the runner itself
counts crashes and hangs instead of dying of them."""

import onnx
import pytest
from fake_worker import fake_worker

from dlc.fuzz.mutate import Case, make_case
from dlc.fuzz.run import FAILURES, FuzzRun, classify, summarize
from dlc.fuzz.seeds import SEEDS

SMOKE_SEED, SMOKE_CASES = 7, 200  # about a minute on two cores


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seed_models_are_valid(name):
    model = SEEDS[name]()
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)


def test_cases_are_reproducible_and_varied():
    a, b = make_case(3, 17), make_case(3, 17)
    assert a.model_bytes == b.model_bytes and a.mutations == b.mutations and a.compile_args == b.compile_args
    cases = [make_case(3, i) for i in range(200)]
    assert len({c.model_bytes for c in cases}) > 190
    assert len({c.seed_model for c in cases}) == len(SEEDS)
    kinds = {m.split()[0] for c in cases for m in c.mutations}
    for kind in ("insert", "opset", "tensor", "bytes:", "--input-shape"):
        assert kind in kinds, kind


@pytest.mark.parametrize("name, code, exc, out, err, outcome", [
    ("compile", 0, None, "", "compiled m.onnx for llvm in 0.5s -> m.so\n", "ok"),
    ("inspect", 1, None, "unsupported Foo: nodes f", "", "ok"),
    ("compile", 2, "ModelError", "", "dlc: error: m.onnx: ONNX checker: bad\n", "error"),
    ("compile", 3, "CompileError", "", "[12:00:00] tvm.cc:1: Warning: x\ndlc: error: phase 'graph' failed\n",
     "unclean"),
    ("compile", 70, "KeyError", "", "dlc: internal error: KeyError: 'x' (rerun with --verbose)\n", "internal"),
    ("compile", 2, "ModelError", "", "Traceback (most recent call last):\n  ...\ndlc: error: m\n", "traceback"),
    ("compile", 1, None, "", "", "unclean"),
])
def test_classify(name, code, exc, out, err, outcome):
    assert classify(name, code, exc, out, err)[0] == outcome


def test_fixed_seed_smoke_run_has_no_failures(tmp_path):
    results = FuzzRun(SMOKE_SEED, list(range(SMOKE_CASES)), workers=2, timeout=120, keep_dir=tmp_path).run()
    summary = summarize(results)
    failed = [r.to_json() for r in results if r.outcome in FAILURES]
    assert summary["failures"] == 0, failed
    assert summary["cases"] == SMOKE_CASES
    # The cases reach every stage: some compile, some die in the checker, some in dlc's own validation.
    assert summary["compiled"] >= 10
    errors = " ".join(summary["top_errors"])
    assert "ONNX checker" in errors and "not an ONNX model" in errors


@pytest.mark.slow
def test_long_fuzz_run_has_no_failures(tmp_path):
    """The acceptance run, 2000 cases (about 15 minutes on two cores): `python -m dlc.fuzz --cases 2000 --seed 1`."""
    results = FuzzRun(1, list(range(2000)), workers=2, timeout=120, keep_dir=tmp_path).run()
    failed = [r.to_json() for r in results if r.outcome in FAILURES]
    assert not failed, failed[:5]


# ---- the runner survives what it is there to find ----------------------------------------------------------
def fake_case(seed, index):
    action = [b"ok", b"segv", b"error", b"hang", b"abort", b"ok"][index]
    return Case(index, "fake", [action.decode()], action)


def test_runner_counts_crashes_and_hangs_and_goes_on():
    results = FuzzRun(0, list(range(6)), workers=2, timeout=3, niceness=0, make_case=fake_case,
                      worker=fake_worker).run()
    outcomes = {r.case.index: r.outcome for r in results}
    assert outcomes == {0: "ok", 1: "crash", 2: "error", 3: "hang", 4: "crash", 5: "ok"}
    crash = next(c for c in results[1].commands if c.outcome == "crash")
    assert crash.message.startswith("SIGSEGV") and crash.name == "inspect"
    assert next(c for c in results[4].commands if c.outcome == "crash").message.startswith("SIGABRT")
    assert summarize(results)["failures"] == 3


def test_command_line_writes_a_report(tmp_path):
    import json

    from dlc.fuzz.__main__ import main

    out = tmp_path / "report.json"
    assert main(["--seed", "1", "--only", "4", "--only", "6", "--workers", "1", "--out", str(out), "-q"]) == 0
    report = json.loads(out.read_text())
    assert report["seed"] == 1 and report["command"].startswith("python -m dlc.fuzz --seed 1")
    assert [c["index"] for c in report["cases"]] == [4, 6]
    assert report["summary"]["cases"] == 2 and report["summary"]["failures"] == 0
    assert all(c["commands"] and c["mutations"] for c in report["cases"])
