"""Numba kernels for NHWC float32 convolutional inference. No model knowledge lives here.

Every fast kernel has a float64 reference with the same name plus ``_ref`` in
``kernels.reference``; the tests hold each fast kernel to its reference.

Threading layer and vector width: chosen on purpose before the first kernel compiles (see
``threading`` and ``vector_width``).
"""
from . import threading as _threading  # noqa: F401  (must run before any parallel compile)
from . import vector_width as _vector_width  # noqa: F401  (must run before any compile)
from .activation import ACTIVATIONS, activation_code
from .argmax import argmax_channels_nhwc
from .channel_ops import concat_channels_nhwc, image_pool_nhwc_f32, scale_channels_nhwc_f32, sigmoid_gate_nhwc_f32
from .conv import conv2d_dilated_nhwc_f32, conv2d_nhwc_f32
from .depthwise import dwconv2d_nhwc_f32
from .gemm import gemm_bias_act_f32
from .gemm_tile import pack as pack_weights
from .inverted_residual import expand_dwconv2d_nhwc_f32
from .padding import conv_output_size
from .pool import global_avg_pool_nhwc_f32
from .resize import resize_bilinear_nhwc_f32, resize_bilinear_rows_nhwc_f32
from .squeeze_excite import squeeze_excite_nhwc_f32

__all__ = [
    "ACTIVATIONS", "activation_code", "argmax_channels_nhwc", "concat_channels_nhwc",
    "conv2d_dilated_nhwc_f32", "conv2d_nhwc_f32", "conv_output_size", "dwconv2d_nhwc_f32",
    "expand_dwconv2d_nhwc_f32", "gemm_bias_act_f32", "global_avg_pool_nhwc_f32", "image_pool_nhwc_f32", "pack_weights",
    "resize_bilinear_nhwc_f32", "resize_bilinear_rows_nhwc_f32", "scale_channels_nhwc_f32", "sigmoid_gate_nhwc_f32",
    "squeeze_excite_nhwc_f32",
]
