"""LiteRT's uint8 arithmetic on tinynet's float32 kernels, exactly (tinynet.detection.tflite_ssd's integer networks).

Every tensor holds n = q - zero_point, integers stored as float32. A conv with integer weights (q_w - zp_w) and
bias bias_q accumulates sum(n_x * n_w) + bias_q; float32 holds every integer below 2**24 exactly, so when each
output's sum of |n_w| * max|n_x| + |bias_q| stays below that (``exact`` checks it) the accumulator is the exact
int32 one whatever order the kernel adds in. The node kinds here then do what LiteRT 2.3's kernels do next
(XNNPACK for the convs, TFLite's builtin kernels for the rest; verified bit for bit on the shared photos):

  requant     conv accumulators -> n_out = round-half-even(clamp(float32(acc) * scale, lo, hi))   (XNNPACK "fp32")
  rescale     a CONCATENATION input with other quantization: q_out = round-half-away(q_in * s + b) clamped to
              0..255, s = float32(s_in) * (1 / float32(s_out)), b = -zp_in * s                 (ConcatenationWithScaling)
  lut         LOGISTIC: a 256-entry table, q_out = clamp(floor(sigmoid(s_in * (q - zp_in)) / s_out + 0.5) + zp_out)
  dequantize  an output in real units, n * scale (what the postprocess's dequantization gives)
"""
import numpy as np

from tinynet.graph import Node, node_kind
from tinynet.kernels.fake_quant import requantize_f32

FLOAT32_INTEGERS = 2 ** 24
f32 = np.float32


def exact(d):
    """Whether DetectionGraph ``d`` is a per-tensor uint8 graph whose convs float32 accumulates exactly."""
    if d.input_quant is None or any(n.quant is None for n in d.nodes):
        return False
    quant = {d.input: d.input_quant, **{n.name: n.quant for n in d.nodes}}
    for node in d.nodes:
        if node.kind in ("conv", "dw", "pw"):
            if node.integer is None:
                return False
            scale, zero_point = quant[node.inputs[0]]
            largest_input = max(zero_point, 255 - zero_point)
            w = np.abs(node.integer["w"])
            per_output = (w.reshape(-1, w.shape[-1]).sum(axis=0) * largest_input) + np.abs(node.integer["b"])
            if per_output.max() >= FLOAT32_INTEGERS:
                return False
    return True


def _requant_bind(node, ins, out, ctx):
    rows = lambda a: a.reshape(-1, a.shape[-1])
    return [(requantize_f32, [rows(ins[0]), rows(out), *(f32(node.option(k)) for k in ("scale", "lo", "hi"))])]


node_kind("requant", kernels=(requantize_f32,), bind=_requant_bind)(lambda node, shapes, padding: shapes[0])


def _rescale(x, out, zp_in, scale, bias, zp_out):
    v = (x + f32(zp_in)) * f32(scale) + f32(bias)
    rounded = np.trunc(v + np.copysign(f32(0.5), v))  # std::round: half away from zero
    np.subtract(np.clip(rounded + f32(zp_out), f32(0), f32(255)), f32(zp_out), out=out)


node_kind("rescale", kernels=(_rescale,), bind=lambda node, ins, out, ctx: [
    (_rescale, [ins[0], out, *(node.option(k) for k in ("zp_in", "scale", "bias", "zp_out"))])])(
    lambda node, shapes, padding: shapes[0])


def rescale_node(name, source, quant_in, quant_out):
    """The node requantizing ``source`` from ``quant_in`` to ``quant_out`` (scale, zero_point), None if they agree."""
    if quant_in == quant_out:
        return None
    scale = f32(quant_in[0]) * (f32(1) / f32(quant_out[0]))
    bias = -f32(quant_in[1]) * scale
    return Node(name, "rescale", (source,), options=(("zp_in", quant_in[1]), ("scale", float(scale)),
                                                     ("bias", float(bias)), ("zp_out", quant_out[1])))


def _lut(x, out, table, zp_in):
    np.take(np.asarray(table, np.float32), (x + f32(zp_in)).astype(np.intp), out=out)


node_kind("lut", kernels=(_lut,), bind=lambda node, ins, out, ctx: [
    (_lut, [ins[0], out, node.option("table"), node.option("zp_in")])])(lambda node, shapes, padding: shapes[0])


def lut_node(name, source, quant_in, quant_out):
    """LOGISTIC from ``quant_in`` to ``quant_out`` as TFLite's uint8 kernel tabulates it; the table holds n_out."""
    q = np.arange(256)
    real = f32(quant_in[0]) * (q - quant_in[1]).astype(np.float32)
    with np.errstate(over="ignore"):
        sigmoid = f32(1) / (f32(1) + np.exp(-real, dtype=np.float32))
    levels = np.clip(np.floor(sigmoid / f32(quant_out[0]) + f32(0.5)) + quant_out[1], 0, 255) - quant_out[1]
    return Node(name, "lut", (source,), options=(("table", tuple(float(v) for v in levels)), ("zp_in", quant_in[1])))


def _dequantize(x, out, scale):
    np.multiply(x, f32(scale), out=out)


node_kind("dequantize", kernels=(_dequantize,), bind=lambda node, ins, out, ctx: [
    (_dequantize, [ins[0], out, node.option("scale")])])(lambda node, shapes, padding: shapes[0])
