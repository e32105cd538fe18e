"""Reading DeepLab-style .tflite graphs into named-tensor nodes (tinynet.formats.tflite_segmentation), on tiny graphs
built with tinynet.formats.tflite_builder: TF's atrous depthwise conv spelled SPACE_TO_BATCH_ND / DEPTHWISE_CONV_2D /
BATCH_TO_SPACE_ND, and a BatchNorm left as MUL + ADD, are one dilated depthwise node with the BatchNorm folded in.
The expected values come from a float64 NumPy evaluation of the graph's operators as TFLite defines them."""
import numpy as np
import pytest

from tinynet.errors import UnsupportedModelError
from tinynet.formats.tflite_builder import Graph
from tinynet.formats.tflite_schema import read_graph
from tinynet.formats.tflite_segmentation import is_segmentation_graph, read_segmentation_graph
from tinynet.kernels import activation_code
from tinynet.kernels.reference import dwconv2d_nhwc_ref

SIZE, CHANNELS, RATE = 9, 3, 2  # an image: three channels


def space_to_batch_graph(pads=((2, 3), (2, 3)), crops=((0, 1), (0, 1)), size=SIZE):
    """float (1, S, S, C) -> SPACE_TO_BATCH_ND -> DEPTHWISE_CONV_2D 3x3 VALID -> BATCH_TO_SPACE_ND -> MUL -> ADD (relu6)
    -> RESIZE_BILINEAR to S x S -> ARG_MAX; returns (graph, constants)."""
    data, c = space_to_batch_tflite(pads, crops, size)
    return read_graph(data), c


def space_to_batch_tflite(pads=((2, 3), (2, 3)), crops=((0, 1), (0, 1)), size=SIZE):
    """space_to_batch_graph's .tflite bytes and constants (also a seed of tests/test_fuzz_readers.py)."""
    rng = np.random.default_rng(0)
    c = {"w": rng.normal(size=(1, 3, 3, CHANNELS)).astype(np.float32),
         "b": rng.normal(size=CHANNELS).astype(np.float32),
         "mul": rng.uniform(0.5, 2, CHANNELS).astype(np.float32), "add": rng.normal(size=CHANNELS).astype(np.float32)}
    g = Graph()
    x = g.input((1, size, size, CHANNELS))
    padded = [size + sum(p) for p in pads]
    batches = g.op("SPACE_TO_BATCH_ND", [x, g.const(np.int32([RATE, RATE])), g.const(np.int32(pads))],
                   (RATE * RATE, padded[0] // RATE, padded[1] // RATE, CHANNELS))
    conv = g.op("DEPTHWISE_CONV_2D", [batches, g.const(c["w"]), g.const(c["b"])],
                (RATE * RATE, padded[0] // RATE - 2, padded[1] // RATE - 2, CHANNELS), padding="VALID")
    full = [RATE * (p // RATE - 2) - sum(cr) for p, cr in zip(padded, crops)]
    y = g.op("BATCH_TO_SPACE_ND", [conv, g.const(np.int32([RATE, RATE])), g.const(np.int32(crops))],
             (1, *full, CHANNELS))
    y = g.op("MUL", [y, g.const(c["mul"])], (1, *full, CHANNELS))
    y = g.op("ADD", [y, g.const(c["add"])], (1, *full, CHANNELS), act="RELU6")
    y = g.op("RESIZE_BILINEAR", [y, g.const(np.int32([size, size]))], (1, size, size, CHANNELS), align_corners=True)
    out = g.op("ARG_MAX", [y, g.const(np.int32(3))], (1, size, size), np.int64)
    return g.finish(out), c


def tflite_ops_ref(x, c, pads, crops):
    """The graph's operators as TFLite defines them, in float64: pad, split into RATE x RATE phases, VALID conv of
    each, interleave, crop, then x * mul + add and relu6."""
    padded = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    out_h, out_w = padded.shape[1] - RATE * 2, padded.shape[2] - RATE * 2
    y = np.zeros((1, out_h, out_w, CHANNELS))
    for a in range(RATE):
        for b in range(RATE):
            phase = padded[:, a::RATE, b::RATE]
            for i in range(phase.shape[1] - 2):
                for j in range(phase.shape[2] - 2):
                    y[0, i * RATE + a, j * RATE + b] = (phase[0, i:i + 3, j:j + 3] * c["w"][0]).sum((0, 1)) + c["b"]
    y = y[:, crops[0][0]:out_h - crops[0][1], crops[1][0]:out_w - crops[1][1]]
    return np.clip(y * c["mul"] + c["add"], 0, 6)


def test_space_to_batch_and_batch_norm_read_as_one_dilated_depthwise_node():
    graph, c = space_to_batch_graph()
    assert is_segmentation_graph(graph)
    s = read_segmentation_graph(graph)
    (node,) = s.nodes
    assert (node.kind, node.k, node.stride, node.dilation, node.act) == ("dw", 3, 1, RATE, "relu6")
    assert s.logits == node.name and s.align_corners and not s.half_pixel_centers and s.output_grid is None
    assert s.input_range == (-1.0, 1.0) and not s.uint8
    # The node computes what the operators compute: a SAME-padded dilated conv with the BatchNorm folded.
    x = np.random.default_rng(1).normal(size=(1, SIZE, SIZE, CHANNELS))
    ours = dwconv2d_nhwc_ref(x, node.weights["w"], node.weights["b"], (SIZE, SIZE), 1, RATE, RATE,
                             activation_code("relu6"), dilation=RATE)
    np.testing.assert_allclose(ours, tflite_ops_ref(x, c, ((2, 3), (2, 3)), ((0, 1), (0, 1))), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("pads, crops", [(((1, 4), (2, 3)), ((0, 1), (0, 1))),  # shifted by a pixel
                                         (((2, 3), (2, 3)), ((1, 0), (0, 1)))])
def test_space_to_batch_padding_other_than_same_is_refused(pads, crops):
    graph, _ = space_to_batch_graph(pads, crops)
    with pytest.raises(UnsupportedModelError, match="not TensorFlow SAME padding"):
        read_segmentation_graph(graph)


def test_a_graph_without_the_final_argmax_is_not_segmentation():
    g = Graph()
    x = g.input((1, 4, 4, 3))
    y = g.op("RESIZE_BILINEAR", [x, g.const(np.int32([8, 8]))], (1, 8, 8, 3))
    assert not is_segmentation_graph(read_graph(g.finish(y)))
