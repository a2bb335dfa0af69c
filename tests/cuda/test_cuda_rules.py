"""The hand-written cuda rules (schedules/cuda): which rule takes which kernel, in which layouts, and that
every schedule passes TVM's structural verification (well-formed TensorIR; VerifyGPUCode: lowered with
the target's thread, shared-memory and vector limits). No GPU needed; numerics run with ``-m gpu``."""

import pytest
import tvm
from cuda_kernels import is_static, scheduled_kernels, verify_gpu_code, well_formed
from helpers import conv_model, make_model, rand, single_op_model
from onnx import helper
from tvm import relax, s_tir, tirx

import dlc
from dlc.schedule import REGISTRY, load_builtin_rules


def _origins(model, **kw):
    """{kernel: rule} for a small model, after checking every kernel is hand-scheduled and verified."""
    funcs, reports = scheduled_kernels(model, **kw)
    for r in reports:
        assert r.origin.startswith("hand:") and not r.rejected, (r.name, r.origin, r.rejected)
        assert well_formed(funcs[r.name]), r.name
        assert not is_static(funcs[r.name]) or verify_gpu_code(funcs[r.name]), r.name
    return {r.name: r.origin.removeprefix("hand:") for r in reports}


def _matmul_model(m, k, n, dtype="float32", batch=(1,), trans_b=False, bias=True):
    w = rand(*((n, k) if trans_b else (k, n)), seed=1, dtype=dtype, scale=0.1)
    if trans_b:
        nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)]
        return make_model(nodes, [("x", [m, k], dtype)], [("y", [m, n], dtype)],
                          [("w", w), ("b", rand(n, seed=2, dtype=dtype))])
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["y"])]
    return make_model(nodes, [("x", [*batch, m, k], dtype)], [("y", [*batch, m, n], dtype)],
                      [("w", w), ("b", rand(n, seed=2, dtype=dtype))])


@pytest.mark.parametrize("kw,rule", [
    (dict(c=16, k=32, hw=28), "conv2d_direct"),  # 3x3, pad 1
    (dict(c=16, k=32, hw=28, stride=2), "conv2d_direct"),
    (dict(c=32, k=64, hw=14, kernel=1, pad=0), "conv2d_direct"),
    (dict(c=3, k=64, hw=112, kernel=7, stride=2, pad=3), "conv2d_direct"),  # a stem: the window is walked
    (dict(c=3, k=32, hw=111, kernel=11, stride=4, pad=0), "conv2d_direct"),  # odd sizes, no exact tiles
    (dict(c=16, k=32, hw=14, group=4), "conv2d_direct"),  # grouped
    (dict(c=32, k=32, hw=28, group=32), "depthwise_conv2d"),
    (dict(c=32, k=32, hw=14, group=32, stride=2), "depthwise_conv2d"),
    (dict(n=2, c=8, k=16, hw=16), "conv2d_direct"),  # batch 2
])
def test_conv_rules(kw, rule):
    origins = _origins(conv_model(**kw), winograd="off")  # the direct rules; Winograd has its own tests
    assert list(origins.values()) == [rule]


def test_conv_with_symbolic_batch_is_still_hand_scheduled():
    origins = _origins(conv_model(n="N", c=8, k=16, hw=16))
    assert list(origins.values()) == ["conv2d_direct"]
    model = dlc.compile(conv_model(n="N", c=8, k=16, hw=16), "cuda:sm_80")  # and nvcc takes it
    assert model.metadata["cuda"]["kernels"][0]["spill_stores"] == 0


@pytest.mark.parametrize("layouts,rule", [(["NHWC", "HWIO"], "conv2d_direct"), (["NHWC", "OHWI"], "conv2d_direct")])
def test_conv_rules_follow_block_structure_not_layout(layouts, rule, monkeypatch):
    """A layout pass may hand the rules NHWC convolutions: the same rules take them."""
    import cuda_kernels

    real = cuda_kernels.import_onnx

    def import_nhwc(*a, **k):
        imported = real(*a, **k)
        imported.mod = relax.transform.ConvertLayout({"relax.nn.conv2d": layouts})(imported.mod)
        return imported

    monkeypatch.setattr(cuda_kernels, "import_onnx", import_nhwc)
    origins = _origins(conv_model(c=16, k=32, hw=14))
    conv = [name for name in origins if "conv2d" in name]
    assert [origins[n] for n in conv] == [rule]


@pytest.mark.parametrize("model,rule", [
    (_matmul_model(128, 256, 512), "matmul_tiled"),
    (_matmul_model(128, 64, 128, batch=(2, 4)), "matmul_tiled"),  # batch matmul
    (_matmul_model(96, 100, 200, trans_b=True), "matmul_tiled"),  # Gemm, transposed weights, no exact tiles
    (_matmul_model(1, 2048, 1000), "gemv"),  # a classifier at batch 1
    (_matmul_model(1, 512, 256, trans_b=True), "gemv"),
    (_matmul_model(128, 256, 512, dtype="float16"), "matmul_tensorcore"),
    (_matmul_model(100, 72, 200, dtype="float16"), "matmul_tensorcore"),  # padded to whole tiles
    (_matmul_model(64, 64, 64, dtype="float16", trans_b=True), "matmul_tensorcore"),
])
def test_matmul_rules(model, rule):
    origins = _origins(model)
    assert list(origins.values()) == [rule]


def test_batch_matmul_of_two_activations():
    nodes = [helper.make_node("MatMul", ["a", "b"], ["y"])]
    model = make_model(nodes, [("a", [2, 4, 128, 64]), ("b", [2, 4, 64, 128])], [("y", [2, 4, 128, 128])])
    assert list(_origins(model).values()) == ["matmul_tiled"]


def test_tensor_core_kernel_uses_wmma_and_compiles():
    model = dlc.compile(_matmul_model(128, 256, 512, dtype="float16"), "cuda:sm_80")
    assert [k["origin"] for k in model.kernels] == ["hand:matmul_tensorcore"]
    (kernel,) = model.metadata["cuda"]["kernels"]
    assert kernel["spill_stores"] == 0 and kernel["shared_bytes"] > 0


@pytest.mark.parametrize("op,attrs,shape,rule", [
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), [1, 16, 56, 56], "window_reduction"),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]), [1, 16, 28, 28], "window_reduction"),
    ("LRN", dict(size=5), [1, 16, 28, 28], "window_reduction"),
    ("GlobalAveragePool", {}, [1, 256, 7, 7], "row_reduction"),
    ("Softmax", dict(axis=-1), [4, 1000], "row_reduction"),
    ("Softmax", dict(axis=-1), [1, 1000], "row_reduction"),
    ("ReduceMax", dict(axes=[-1], keepdims=0), [64, 512], "row_reduction"),
])
def test_reduction_rules(op, attrs, shape, rule):
    out_shape = None
    if op == "GlobalAveragePool":
        out_shape = shape[:2] + [1, 1]
    elif op == "ReduceMax":
        out_shape = shape[:-1]
    elif op in ("MaxPool",):
        out_shape = [shape[0], shape[1], (shape[2] + 1) // 2, (shape[3] + 1) // 2]
    model = single_op_model(op, [("x", shape)], [("y", out_shape or shape)], **attrs)
    origins = _origins(model)
    assert rule in origins.values(), origins


def test_layer_norm_is_a_row_reduction():
    nodes = [helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1, epsilon=1e-5)]
    model = make_model(nodes, [("x", [1, 128, 256])], [("y", [1, 128, 256])],
                       [("g", rand(256, seed=1)), ("b", rand(256, seed=2))])
    assert "row_reduction" in _origins(model).values()


@pytest.mark.parametrize("nodes,inputs,output,rule", [
    ([helper.make_node("Add", ["a", "b"], ["y"])], [("a", [1, 64, 28, 28]), ("b", [1, 64, 1, 1])],
     ("y", [1, 64, 28, 28]), "injective"),
    ([helper.make_node("Concat", ["a", "b"], ["y"], axis=1)], [("a", [1, 24, 28, 28]), ("b", [1, 40, 28, 28])],
     ("y", [1, 64, 28, 28]), "injective"),
    ([helper.make_node("Transpose", ["a"], ["y"], perm=[0, 2, 1])], [("a", [4, 128, 256])], ("y", [4, 256, 128]),
     "transpose"),
])
def test_injective_rules(nodes, inputs, output, rule):
    assert list(_origins(make_model(nodes, inputs, [output])).values()) == [rule]


def test_elementwise_kernels_move_float4_and_concat_does_not():
    """Vector loads only where every access is an aligned row (a concat's offset read is not)."""
    relu = make_model([helper.make_node("Relu", ["a"], ["y"])], [("a", [1, 64, 28, 28])], [("y", [1, 64, 28, 28])])
    cat = make_model([helper.make_node("Concat", ["a", "b"], ["y"], axis=3)],
                     [("a", [1, 4, 8, 6]), ("b", [1, 4, 8, 10])], [("y", [1, 4, 8, 16])])
    (relu_func,) = scheduled_kernels(relu)[0].values()
    (cat_func,) = scheduled_kernels(cat)[0].values()
    assert any(lp.kind == tirx.ForKind.VECTORIZED for lp in _loops(relu_func))
    assert not any(lp.kind == tirx.ForKind.VECTORIZED for lp in _loops(cat_func))


def _loops(func):
    import tvm_ffi

    out = []
    tvm_ffi.structural_walk(func.body, [(tirx.For, out.append)], order="pre")
    return out


def test_rules_are_deterministic():
    """Tuning takes the hand rules as its candidates: the same kernel must get the same schedule."""
    a, _ = scheduled_kernels(conv_model(c=16, k=32, hw=28))
    b, _ = scheduled_kernels(conv_model(c=16, k=32, hw=28))
    assert a.keys() == b.keys()
    for name in a:
        tvm.ir.assert_structural_equal(a[name], b[name])


@pytest.mark.parametrize("threads,ok", [(256, True), (2048, False)])
def test_verify_gpu_code_can_fail(threads, ok):
    """The structural check has teeth: 2048 threads a block is over every GPU's limit."""
    from tvm import te

    x = te.placeholder((4096,), name="x")
    y = te.compute((4096,), lambda i: te.max(x[i], tirx.const(0, "float32")), name="y")
    sch = s_tir.Schedule(te.create_prim_func([x, y]))
    (loop,) = sch.get_loops(sch.get_sblock("y"))
    bx, tx = sch.split(loop, [None, threads])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    assert verify_gpu_code(sch.mod["main"]) is ok


def test_every_cuda_rule_module_registers_one_family():
    load_builtin_rules("cuda")
    names = {r.name for r in REGISTRY.rules("cuda", "hand")}
    assert {"conv2d_direct", "depthwise_conv2d", "matmul_tensorcore", "matmul_tiled", "gemv", "window_reduction",
            "row_reduction", "transpose", "injective"} <= names
