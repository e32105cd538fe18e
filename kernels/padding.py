"""Output size and leading padding for the two padding conventions MobileNets are trained with.

- ``"symmetric"`` (PyTorch): pad ``k // 2`` on both sides; output ``(n + 2*(k//2) - k) // s + 1``.
- ``"tf_same"`` (TensorFlow SAME): output ``ceil(n / s)``; the total padding is split with the
  extra pixel at the end, so a stride-2 3x3 conv on an even size pads (0, 1), not (1, 1).

With dilation ``d`` a kernel of size ``k`` spans ``(k - 1) * d + 1`` pixels; both conventions use that span as the
kernel size (torchvision pads ``(k - 1) // 2 * d``, the same for odd ``k``).

Kernels receive only the leading pad (top or left); trailing padding is implied by the output size.
"""
from numba import njit

PADDINGS = ("symmetric", "tf_same")


def conv_output_size(size, kernel, stride, padding, dilation=1):
    """Return ``(output_size, pad_before)`` for one spatial dimension."""
    if dilation < 1:
        raise ValueError(f"dilation must be at least 1, got {dilation}")
    kernel = (kernel - 1) * dilation + 1
    if padding == "symmetric":
        pad = kernel // 2
        return (size + 2 * pad - kernel) // stride + 1, pad
    if padding == "tf_same":
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return out, total // 2
    raise ValueError(f"unknown padding {padding!r}; expected one of {PADDINGS}")


@njit(cache=True)
def interior_columns(width, out_w, kw, stride, pad_left):
    """Output columns [lo, hi) whose kw taps all fall inside the input row (the rest need border handling)."""
    lo = min((pad_left + stride - 1) // stride, out_w)
    hi = max(min((width - kw + pad_left) // stride + 1, out_w), lo)
    return lo, hi
