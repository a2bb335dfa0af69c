"""TensorIR computations dlc adds to TOPI (as TE computes), and the Relax legalizations that use them.

``schedules/<kind>/`` holds the rules that schedule the blocks these computes create.
"""

from .conv2d_nchwc import conv2d_nchwc, depthwise_conv2d_nchwc

__all__ = ["conv2d_nchwc", "depthwise_conv2d_nchwc"]
