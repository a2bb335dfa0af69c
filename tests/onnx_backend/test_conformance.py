"""A fast, representative slice of the ONNX backend conformance suite, run the way the full suite runs it
(``python -m dlc.onnx_backend.suite``): in crash-isolated workers, compared as onnx's runner compares.

One or two cases per family dlc's frontend adds or fixes (run-time shape operands, float8/int4 casts, Resize
semantics, quantization, recurrent and control flow ops, function bodies such as Attention and the losses),
plus plain ops, file-based cases and the expected-failures list's consistency. The full suite (2033 cases)
is ``python -m dlc.onnx_backend.suite --out results.json``.
"""

import pytest

from dlc.onnx_backend.cases import CATEGORIES, all_cases, node_cases
from dlc.onnx_backend.pool import WorkerPool
from dlc.onnx_backend.suite import EXPECTED_FAILURES, case_key, read_expected

# case module (onnx.backend.test.case.node.<module>) -> node cases from it
SUBSET = {
    "abs": ["test_abs"],
    "add": ["test_add_bcast"],
    "conv": ["test_conv_with_strides_padding"],
    "reshape": ["test_reshape_negative_dim"],
    "slice": ["test_slice_neg_steps"],
    "reducesum": ["test_reduce_sum_keepdims_random"],
    "reduce_log_sum_exp": ["test_reduce_log_sum_exp_do_not_keepdims_random"],
    "resize": ["test_resize_downsample_scales_linear", "test_resize_upsample_sizes_nearest_not_larger"],
    "cast": ["test_cast_FLOAT_to_FLOAT8E4M3FN"],
    "castlike": ["test_castlike_FLOAT_to_INT4_expanded"],
    "quantizelinear": ["test_quantizelinear_blocked_asymmetric"],
    "dequantizelinear": ["test_dequantizelinear_axis"],
    "qlinearmatmul": ["test_qlinearmatmul_2D_uint8_float32"],
    "matmulinteger": ["test_matmulinteger"],
    "convinteger": ["test_convinteger_with_padding"],
    "gru": ["test_gru_seq_length"],
    "lstm": ["test_lstm_with_peepholes"],
    "rnn": ["test_rnn_seq_length"],
    "loop": ["test_loop11"],
    "scan": ["test_scan9_sum"],
    "if_": ["test_if"],
    "rangeop": ["test_range_float_type_positive_delta_expanded"],
    "layernormalization": ["test_layer_normalization_4d_axis1"],
    "attention": ["test_attention_4d_gqa_with_past_and_present"],
    "softmax_cross_entropy_loss": ["test_sce_mean_weight_ii"],
    "negativeloglikelihoodloss": ["test_nllloss_NCd1d2"],
    "topk": ["test_top_k_same_values"],
    "cumsum": ["test_cumsum_2d_negative_axis"],
    "onehot": ["test_onehot_with_axis"],
    "dft": ["test_dft"],
    "bitcast": ["test_bitcast_float32_to_int32"],
    "adam": ["test_adam"],
    "tensorscatter": ["test_tensorscatter_circular"],
    "center_crop_pad": ["test_center_crop_pad_crop_axes_chw_expanded"],
    "affinegrid": ["test_affine_grid_2d_expanded"],
    "shape": ["test_shape_start_1_end_negative_1"],
    "expand": ["test_expand_dim_changed"],
    "pad": ["test_reflect_pad"],
    "gatherelements": ["test_gather_elements_negative_indices"],
    "softmax": ["test_softmax_axis_0_expanded"],
    "unsqueeze": ["test_unsqueeze_unsorted_axes"],
    "constant": ["test_constant"],
    "rmsnormalization": ["test_rms_normalization_3d_axis_negative_1_epsilon"],
    "swish": ["test_swish"],
    "split": ["test_split_variable_parts_2d_opset18"],
    "einsum": ["test_einsum_batch_matmul"],
    "gelu": ["test_gelu_tanh_2"],
}
FILE_CASES = {"simple": ["test_sign_model"], "pytorch-converted": ["test_Conv2d_depthwise_padded"],
              "pytorch-operator": ["test_operator_pad"]}


def _subset():
    names = [n for ns in SUBSET.values() for n in ns]
    cases = node_cases(names, modules=list(SUBSET))
    for c in all_cases(list(FILE_CASES)):
        if c.name in FILE_CASES[c.category]:
            cases.append(c)
    return cases


def test_subset_passes():
    cases = _subset()
    assert len(cases) == sum(map(len, SUBSET.values())) + sum(map(len, FILE_CASES.values()))
    expected = read_expected()
    results = WorkerPool(jobs=2, timeout=300).run(cases)
    bad = [f"{r.category}/{r.case}: {r.status}: {r.reason}" for r in results
           if r.status != "pass" and case_key(r.category, r.case) not in expected]
    assert not bad, "\n".join(bad)


def test_expected_failures_list_is_well_formed():
    expected = read_expected()
    assert expected, f"{EXPECTED_FAILURES} is missing or empty"
    for key, reason in expected.items():
        category, _, name = key.partition("/")
        assert category in CATEGORIES and name.startswith("test_"), key
        assert reason, f"{key} has no reason"


@pytest.mark.slow
def test_full_suite_meets_the_bar():
    """All 2033 cases (an hour of CPU on two cores): at least 1700 pass, and nothing fails unexpectedly."""
    cases = all_cases()
    assert len(cases) == 2033
    expected = read_expected()
    results = WorkerPool(jobs=2, timeout=300).run(cases)
    passed = sum(r.status == "pass" for r in results)
    unexpected = [case_key(r.category, r.case) for r in results
                  if r.status != "pass" and case_key(r.category, r.case) not in expected]
    assert passed >= 1700 and not unexpected, (passed, unexpected[:20])
