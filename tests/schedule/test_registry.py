"""The custom-schedule API: rules from Python or a directory, precedence user > tuned > hand > fallback."""

import textwrap

import numpy as np
import pytest
from helpers import conv_model, ort_run, rand, single_op_model
from tvm import s_tir

import dlc
from dlc.errors import CompileError, DlcError
from dlc.schedule import REGISTRY, load_builtin_rules, load_rules_from_dir, rule
from dlc.schedule.apply import schedule_func
from dlc.target import resolve_target

GEMM = single_op_model("Gemm", [("x", [8, 64])], [("y", [8, 32])], [("w", rand(32, 64, seed=1)), ("b", rand(32, seed=2))],
                       transB=1)


@pytest.fixture
def registry_snapshot():
    """Remove whatever a test registers (dlc's own rules are loaded first, so they are not mistaken for it)."""
    load_builtin_rules("llvm")
    before = list(REGISTRY.all())
    yield
    for r in REGISTRY.all():
        if r not in before:
            REGISTRY.remove(r.name, target=r.target)


def _gemm_schedule(func, target):
    """A deliberately plain schedule: parallel rows, vectorized columns."""
    sch = s_tir.Schedule(func)
    try:
        mm = sch.get_sblock("matmul")
    except Exception:
        return None
    i, j, k = sch.get_loops(mm)
    sch.parallel(i)
    return sch


def test_user_rule_from_python_is_used_and_correct(registry_snapshot):
    rule("llvm", name="plain_gemm", order=1)(_gemm_schedule)
    model = dlc.compile(GEMM)
    origins = {k["name"]: k["origin"] for k in model.kernels}
    assert origins["fused_matmul_add"] == "user:plain_gemm"
    x = {"x": rand(8, 64, seed=3)}
    np.testing.assert_allclose(model.run(x)["y"], ort_run(GEMM, x)[0], atol=1e-4, rtol=1e-5)


def test_user_rule_from_a_directory(tmp_path, registry_snapshot, capsys):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "gemm.py").write_text(textwrap.dedent('''
        from tvm import s_tir
        from dlc.schedule import rule

        @rule("llvm", name="dir_gemm")
        def dir_gemm(func, target):
            sch = s_tir.Schedule(func)
            try:
                sch.get_sblock("matmul")
            except Exception:
                return None
            return sch
    '''))
    import onnx

    onnx.save(GEMM, tmp_path / "gemm.onnx")
    from dlc.cli import main

    assert main(["compile", str(tmp_path / "gemm.onnx"), "--schedules", str(tmp_path / "rules"), "--explain", "-q",
                 "-o", str(tmp_path / "gemm.so")]) == 0
    assert "user:dir_gemm" in capsys.readouterr().out


def test_precedence_user_over_tuned_over_hand_over_fallback(registry_snapshot, monkeypatch):
    target = resolve_target("llvm")
    func = _matmul_primfunc()
    tuned = lambda f, t: s_tir.Schedule(f)  # noqa: E731  (a "record" that always answers)
    assert schedule_func(func, "k", target, None)[1].origin == "hand:matmul"
    assert schedule_func(func, "k", target, tuned)[1].origin == "tuned"
    rule("llvm", name="mine", order=50)(_gemm_schedule)
    assert schedule_func(func, "k", target, tuned)[1].origin == "user:mine"
    REGISTRY.remove("mine")
    monkeypatch.setattr(REGISTRY, "_rules", [r for r in REGISTRY.all() if r.origin != "hand"])
    assert schedule_func(func, "k", target, None)[1].origin == "fallback:generic"


def test_a_failing_user_rule_names_itself(registry_snapshot):
    @rule("llvm", name="broken")
    def broken(func, target):
        raise RuntimeError("oops")

    with pytest.raises(CompileError, match="user schedule rule 'broken' failed on kernel .*: RuntimeError: oops"):
        dlc.compile(conv_model())


def test_bad_rules_directory(tmp_path):
    with pytest.raises(DlcError, match="not a directory of schedule rules"):
        load_rules_from_dir(tmp_path / "nope")
    (tmp_path / "bad.py").write_text("this is not python(\n")
    with pytest.raises(DlcError, match="cannot load schedule rules: SyntaxError"):
        load_rules_from_dir(tmp_path)


def _matmul_primfunc():
    from tvm import te

    a, b = te.placeholder((8, 64), name="A"), te.placeholder((64, 32), name="B")
    k = te.reduce_axis((0, 64), name="k")
    c = te.compute((8, 32), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="matmul")
    return te.create_prim_func([a, b, c])
