"""pad-channels: a conv with K % 16 != 0 runs over zero-padded filters in full vectors, sliced back to K."""

import numpy as np
from helpers import conv_model, kernels, lower, ort_run, rand

import dlc
from dlc.passes.pad_channels import padded_channels


def test_padded_channels_only_where_the_waste_is_small():
    assert padded_channels(1000, 16) == 1008  # SqueezeNet's classifier
    assert padded_channels(1008, 16) is None  # already whole vectors
    assert padded_channels(24, 16) is None  # 32 would be a third more work
    # a group of 34 channels: 3 vectors for 48 instead of 17 pairs; of 8 channels: already whole (8-lane) blocks
    assert padded_channels(34, 16, grouped=True) == 48
    assert padded_channels(28, 16, grouped=True) == 32 and padded_channels(8, 16, grouped=True) is None


def test_1000_filter_conv_runs_padded_to_1008_in_16_lane_blocks():
    model = conv_model(c=32, k=1000, hw=5, kernel=1, pad=0)
    before = lower(model, "graph", disable_passes=("pad-channels",))["main"].script()
    after = lower(model, "graph")["main"].script()
    assert 'out_layout="NCHW8c"' in before and "strided_slice" not in before
    assert 'out_layout="NCHW16c"' in after and "R.strided_slice" in after
    # the slice is in the conv's kernel, not a copy of its own
    fused = [k for k in kernels(lower(model, "fuse")) if "conv2d_nchwc" in k]
    assert len(fused) == 1 and "strided_slice" in fused[0]
    x = {"x": rand(1, 32, 5, 5, seed=3)}
    np.testing.assert_allclose(dlc.compile(model).run(x)["y"], ort_run(model, x)[0], atol=1e-4, rtol=1e-5)


def test_grouped_conv_is_padded_group_by_group():
    model = conv_model(c=136, k=136, hw=6, kernel=1, pad=0, group=4)  # ShuffleNet's groups of 34 channels
    before = lower(model, "graph", disable_passes=("pad-channels",))["main"].script()
    after = lower(model, "graph")["main"].script()
    assert 'kernel_layout="OIHW2i2o"' in before
    assert 'kernel_layout="OIHW2i16o"' in after and "R.strided_slice" in after and "groups=4" in after
    x = {"x": rand(1, 136, 6, 6, seed=3)}
    np.testing.assert_allclose(dlc.compile(model).run(x)["y"], ort_run(model, x)[0], atol=1e-4, rtol=1e-5)
