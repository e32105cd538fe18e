"""A graph of named tensors: a backbone plan plus head nodes, with several named outputs.

A network for a dense task is a backbone (a layer table, tinynet.architectures, run by tinynet.plan.Plan) and a
head: a list of ``Node``s in execution order. Each node reads tensors by name and writes one tensor named after
itself. A name is either a backbone layer ("13.expand", "16.conv": the backbone plan keeps those as taps, so they are
never fused away or their buffers reused) or an earlier node. ``GraphPlan`` runs the backbone, then the nodes, and
returns the tensors named in ``outputs`` as {name: array}. The classifier path does not go through here: a classifier
is a backbone plan alone, exactly as before.

Adding a node kind touches this one place: write its ``shape`` (output shape from the input shapes) and ``bind``
(kernel calls) and register them with ``@node_kind("kind")``; ``weights`` (name suffix -> shape) and ``macs`` too
if the kind has weights or does arithmetic worth counting. A kind whose output is only another view of its input
(a reshape) gives ``alias`` instead of ``bind``. ``NODE_KINDS`` is the registry; head_shapes, head_weight_shapes,
count_head and the kernel registry (tinynet.kernel_registry, which warm-up compiles from) enumerate it: add a node
of the new kind to kernel_registry.tiny_head too (it asserts that every kind has one).

Adding a head: write it as a table of rows over named taps (tinynet.detection.ssdlite is one) and a function that
expands the rows into Nodes, with channel counts read from the weights (so any class count loads). The node
names are the weight prefixes: node "cls.0.dw" has weights "cls.0.dw.w" and "cls.0.dw.b" in runtime layout
(tinynet.spec), BatchNorm already folded.
"""
from dataclasses import dataclass, field

import numpy as np

from tinynet import kernels
from tinynet.errors import WeightsError
from tinynet.kernels import activation_code, conv_output_size
from tinynet.kernels.conv import dilated_row_block
from tinynet.kernels.fake_quant import fake_quantize_f32
from tinynet.kernels.gemm import NO_RESIDUAL
from tinynet.plan import Plan, aligned_empty, depthwise_call, kernel_array, packed, pointwise_call


@dataclass(frozen=True)
class Node:
    """One head operation. ``inputs``: tensor names it reads. ``cout``, ``k``, ``stride``, ``act``: for the
    convolution kinds. ``options``: ((key, value), ...) for the rest (e.g. ("axis", 1), ("size", (20, 20)))."""
    name: str
    kind: str
    inputs: tuple
    cout: int = 0
    k: int = 1
    stride: int = 1
    act: str = None
    options: tuple = ()

    def option(self, key, default=None):
        return dict(self.options).get(key, default)


@dataclass
class NodeKind:
    shape: callable  # (node, [input shapes], padding) -> output shape
    bind: callable = None  # (node, [input arrays], output array, context) -> [(kernel, args), ...]
    alias: callable = None  # (node, [input arrays]) -> output array that is a view of an input (no kernel call)
    weights: callable = lambda node, shapes: {}  # (node, [input shapes]) -> {"w": shape, "b": shape}
    macs: callable = lambda node, shapes, out: 0  # multiply-adds, counted as tinynet.spec.count counts them
    kernels: tuple = field(default_factory=tuple)  # the kernels its bind may call (warm-up, checks)


NODE_KINDS = {}


def node_kind(name, **kind):
    """Register the decorated ``shape`` function, and the rest of ``kind`` (NodeKind fields), as node kind ``name``."""
    def register(shape):
        NODE_KINDS[name] = NodeKind(shape=shape, **kind)
        return shape
    return register


@dataclass
class BindContext:
    weights: dict
    packed: dict  # the model's cache of packed weights (tinynet.plan.packed)
    threads: int
    padding: str


def _spatial(node, shape, padding):
    n, h, w, _ = shape
    dilation = node.option("dilation", 1)  # "dw" and "conv": taps this many pixels apart (atrous)
    h, pad_top = conv_output_size(h, node.k, node.stride, padding, dilation)
    w, pad_left = conv_output_size(w, node.k, node.stride, padding, dilation)
    return (n, h, w), (pad_top, pad_left)


# --- convolutions (weights in runtime layout, tinynet.spec) ---------------------------------------------------------

def _bind_pw(node, ins, out, ctx):
    pixels = int(np.prod(out.shape[:-1]))
    wp, bp = packed(ctx.weights, node.name, ctx.packed)
    return [pointwise_call(ins[0].reshape(pixels, -1), wp, bp, out.reshape(pixels, -1), activation_code(node.act),
                           NO_RESIDUAL, ctx.threads)]


node_kind("pw", bind=_bind_pw, kernels=(kernels.gemm_bias_act_f32,),
          weights=lambda node, shapes: {"w": (shapes[0][-1], node.cout), "b": (node.cout,)},
          macs=lambda node, shapes, out: int(np.prod(out[1:-1])) * shapes[0][-1] * node.cout,
          )(lambda node, shapes, padding: (*shapes[0][:-1], node.cout))


def _bind_dw(node, ins, out, ctx):
    w, b = (kernel_array(ctx.weights[f"{node.name}.{wb}"]) for wb in "wb")
    _, pads = _spatial(node, ins[0].shape, ctx.padding)
    return [depthwise_call(ins[0], w, b, out, node.stride, node.option("dilation", 1), pads, activation_code(node.act),
                           ctx.threads)]


node_kind("dw", bind=_bind_dw, kernels=(kernels.dwconv2d_nhwc_f32,),
          weights=lambda node, shapes: {"w": (node.k, node.k, shapes[0][-1]), "b": (shapes[0][-1],)},
          macs=lambda node, shapes, out: int(np.prod(out[1:])) * node.k * node.k,
          )(lambda node, shapes, padding: (*_spatial(node, shapes[0], padding)[0], shapes[0][-1]))


# Input channels from which a head's KxK conv takes the row-block kernel (kernels.conv2d_dilated_nhwc_f32) at
# dilation 1 too: its weights serve a block of rows while in cache (CPU ms at 1 thread, conv2d_nhwc_f32 -> it:
# DeepLab's tail 33x33x256 -> 256 8.5 -> 6.8; 20x20x672 -> 546 31.5 -> 16.8; 65x65x40 -> 64 1.08 -> 0.95), where
# conv2d_nhwc_f32 keeps the few-channel stems (520x520x3 -> 16 at stride 2: 0.64 against 1.46).
ROW_BLOCK_MIN_CIN = 32


def _bind_conv(node, ins, out, ctx):
    wp, bp = packed(ctx.weights, node.name, ctx.packed)
    _, pads = _spatial(node, ins[0].shape, ctx.padding)
    if node.option("dilation", 1) > 1 or ins[0].shape[3] >= ROW_BLOCK_MIN_CIN:
        block = dilated_row_block(out.shape[0] * out.shape[1], wp.shape[0], ctx.threads)
        return [(kernels.conv2d_dilated_nhwc_f32, [ins[0], wp, bp, out, node.k, node.stride, node.option("dilation", 1),
                                                   *pads, activation_code(node.act), block])]
    return [(kernels.conv2d_nhwc_f32, [ins[0], wp, bp, out, node.k, node.stride, *pads, activation_code(node.act)])]


node_kind("conv", bind=_bind_conv, kernels=(kernels.conv2d_nhwc_f32, kernels.conv2d_dilated_nhwc_f32),
          weights=lambda node, shapes: {"w": (node.k, node.k, shapes[0][-1], node.cout), "b": (node.cout,)},
          macs=lambda node, shapes, out: int(np.prod(out[1:])) * node.k * node.k * shapes[0][-1],
          )(lambda node, shapes, padding: (*_spatial(node, shapes[0], padding)[0], node.cout))


# --- reshapes and joins ---------------------------------------------------------------------------------------------

@node_kind("per_anchor", alias=lambda node, ins: ins[0].reshape(ins[0].shape[0], -1, node.option("columns")))
def _per_anchor_shape(node, shapes, padding):
    """(N, H, W, A*K) -> (N, H*W*A, K), K = option "columns": a box head's output per anchor. In NHWC the channels
    of a location are A groups of K, so this is torchvision's view/permute/reshape and TFLite's RESHAPE alike."""
    n, h, w, c = shapes[0]
    columns = node.option("columns")
    if c % columns:
        raise WeightsError(f"{node.name}: {c} channels are not a whole number of anchors of {columns} columns")
    return n, h * w * c // columns, columns


def _concatenate(parts, axis, out):
    np.concatenate(parts, axis=axis, out=out)


@node_kind("concat", bind=lambda node, ins, out, ctx: [(_concatenate, [ins, node.option("axis"), out])],
           kernels=(_concatenate,))
def _concat_shape(node, shapes, padding):
    """Inputs side by side along option "axis" (1: anchors of the per-anchor outputs; 3: NHWC channels)."""
    axis = node.option("axis")
    shape = list(shapes[0])
    shape[axis] = sum(s[axis] for s in shapes)
    return tuple(shape)


def _resize_bind(node, ins, out, ctx):
    return [(kernels.resize_bilinear_nhwc_f32, [ins[0], out, bool(node.option("align_corners", False)),
                                                bool(node.option("half_pixel_centers", False))])]


@node_kind("resize", bind=_resize_bind, kernels=(kernels.resize_bilinear_nhwc_f32,))
def _resize_shape(node, shapes, padding):
    """Bilinear resize to option "size" (height, width), or to the spatial size of a second input."""
    n, _, _, c = shapes[0]
    h, w = node.option("size") or shapes[1][1:3]
    return n, h, w, c


def _elementwise(ufunc):
    return lambda node, ins, out, ctx: [(ufunc, [ins[0], ins[1], out])]


def _broadcast_shape(node, shapes, padding):
    return tuple(np.broadcast_shapes(*shapes))


node_kind("add", bind=_elementwise(np.add), kernels=(np.add,))(_broadcast_shape)
node_kind("mul", bind=_elementwise(np.multiply), kernels=(np.multiply,))(_broadcast_shape)


def sigmoid_f32(x, out):
    """out = 1 / (1 + exp(-x)); exp overflows to inf below -88, giving exactly 0, the right limit."""
    with np.errstate(over="ignore"):
        np.negative(x, out=out)
        np.exp(out, out=out)
        out += np.float32(1)
        np.reciprocal(out, out=out)


node_kind("sigmoid", bind=lambda node, ins, out, ctx: [(sigmoid_f32, [ins[0], out])],
          kernels=(sigmoid_f32,))(lambda node, shapes, padding: shapes[0])
node_kind("argmax", bind=lambda node, ins, out, ctx: [(kernels.argmax_channels_nhwc, [ins[0], out])],
          kernels=(kernels.argmax_channels_nhwc,))(lambda node, shapes, padding: shapes[0][:-1])



@node_kind("image_pool", bind=lambda node, ins, out, ctx: [(kernels.image_pool_nhwc_f32, [ins[0], out])],
           kernels=(kernels.image_pool_nhwc_f32,))
def _image_pool_shape(node, shapes, padding):
    """The mean over H and W of each channel, broadcast to option "size" (default (1, 1); LR-ASPP's gate and
    DeepLab's image pooling)."""
    n, _, _, c = shapes[0]
    return (n, *node.option("size", (1, 1)), c)


def _quantize_bind(node, ins, out, ctx):
    lo, step, levels = node.option("grid")
    return [(np.copyto, [out, ins[0]]),
            (fake_quantize_f32, [out.reshape(-1, out.shape[-1]), np.float32(lo), np.float32(step), int(levels)])]


# A uint8 graph's requantization, run in float: its input rounded to option "grid" (lo, step, levels), clamped to
# its range (uint8 TFLite detectors and segmentation networks, tinynet.detection.tflite_ssd and
# tinynet.segmentation.tflite_deeplab).
node_kind("quantize", bind=_quantize_bind, kernels=(np.copyto, fake_quantize_f32))(lambda node, shapes, padding: shapes[0])

INTEGER_OUTPUT_KINDS = {"argmax"}


# --- checking, counting, running -------------------------------------------------------------------------------------

def head_shapes(nodes, tensor_shapes, padding="symmetric"):
    """{name: shape} of every node's output, given ``tensor_shapes`` of the backbone tensors they read."""
    shapes = dict(tensor_shapes)
    for node in nodes:
        if node.kind not in NODE_KINDS:
            raise ValueError(f"node {node.name}: unknown kind {node.kind!r}; known: {', '.join(NODE_KINDS)}")
        missing = [t for t in node.inputs if t not in shapes]
        if missing:
            raise ValueError(f"node {node.name} reads {missing[0]!r}, which no layer or earlier node writes")
        shapes[node.name] = tuple(NODE_KINDS[node.kind].shape(node, [shapes[t] for t in node.inputs], padding))
    return shapes


def head_weight_shapes(nodes, tensor_shapes, padding="symmetric"):
    """Expected {"<node>.w" / ".b": shape} of the head's weights."""
    shapes = head_shapes(nodes, tensor_shapes, padding)
    return {f"{node.name}.{part}": shape for node in nodes
            for part, shape in NODE_KINDS[node.kind].weights(node, [shapes[t] for t in node.inputs]).items()}


def count_head(nodes, tensor_shapes, padding="symmetric"):
    """Per-node table rows of params and MACs (as tinynet.spec.count's), for a batch of one."""
    shapes = head_shapes(nodes, tensor_shapes, padding)
    table = []
    for node in nodes:
        kind, ins = NODE_KINDS[node.kind], [shapes[t] for t in node.inputs]
        params = sum(int(np.prod(s)) for s in kind.weights(node, ins).values())
        table.append({"name": node.name, "op": node.kind, "output": shapes[node.name][1:], "params": params,
                      "macs": kind.macs(node, ins, shapes[node.name])})
    return table


def backbone_shapes(layers, input_shape, padding="symmetric"):
    """{layer name: output shape} of backbone ``layers`` for ``input_shape`` (N, H, W, 3), without running them."""
    n, h, w, _ = input_shape
    shapes = {}
    for layer in layers:
        if layer.op in ("conv", "dw"):
            h, _ = conv_output_size(h, layer.k, layer.stride, padding, layer.dilation)
            w, _ = conv_output_size(w, layer.k, layer.stride, padding, layer.dilation)
        shapes[layer.name] = (n, layer.cout) if layer.op in ("pool", "fc") else (n, h, w, layer.cout)
    return shapes


def backbone_reads(nodes, outputs=()):
    """The tensor names the head (and ``outputs``) read that no node writes: the backbone taps."""
    written = {node.name for node in nodes}
    return tuple(dict.fromkeys(t for node in nodes for t in node.inputs if t not in written)) + \
        tuple(t for t in outputs if t not in written)


def in_place_concats(nodes, shapes, outputs=()):
    """{concat name: {part name: offset}} of the concats whose inputs can all be written straight into the concat's
    buffer, each part at its offset (in floats), so that the concat itself copies nothing.

    That holds when each input is one contiguous block of the output (the axes before the concat axis are all 1:
    SSDLite's per-anchor outputs of one image, (1, anchors, columns)) and is the output of a head node of a kernel
    kind, maybe through views of it (per_anchor), that nothing else reads. (SSDLite320 at 2 threads: the 3234 x 91
    class logits were a 0.2 ms copy.)"""
    by_name = {node.name: node for node in nodes}
    readers = {}
    for name in [t for node in nodes for t in node.inputs] + list(outputs):
        readers[name] = readers.get(name, 0) + 1
    found = {}
    for node in nodes:
        if node.kind != "concat" or int(np.prod(shapes[node.name][:node.option("axis")])) != 1:
            continue
        parts, offset = {}, 0
        for name in node.inputs:
            part = name
            while part in by_name and NODE_KINDS[by_name[part].kind].alias is not None and readers[part] == 1:
                part = by_name[part].inputs[0]  # through the views to the node that computes it
            if part not in by_name or by_name[part].kind in INTEGER_OUTPUT_KINDS or readers.get(part) != 1 or \
                    NODE_KINDS[by_name[part].kind].alias is not None or by_name[part].kind == "concat":
                break
            parts[part] = offset
            offset += int(np.prod(shapes[name]))
        else:
            found[node.name] = parts
    return found


class GraphPlan:
    """Kernel calls and buffers of backbone + head for one input shape; ``run`` returns {output name: array view}."""

    def __init__(self, layers, nodes, outputs, weights, padding, input_shape, threads, activation_grid=None,
                 packed_weights=None, fresh=()):
        """``fresh``: outputs written into a new array on every run, which the caller then owns (no copy of a
        buffer the next run overwrites: a segmentation model's 520x520x21 logits were a 2.5 ms single-threaded
        copy). Each must be a head node of a kernel kind that no other node reads; its kernel calls are bound
        at each run (cheap: a resize computes its taps per call anyway) and run after the other steps."""
        taps = tuple(dict.fromkeys(backbone_reads(nodes, outputs)))
        self.backbone = Plan(layers, weights, padding, input_shape, threads, activation_grid,
                             packed_weights=packed_weights, taps=taps)
        tensors = {name: self.backbone.tapped(name) for name in taps}
        shapes = head_shapes(nodes, {name: t.shape for name, t in tensors.items()}, padding)
        context = BindContext(weights, self.backbone._packed, threads, padding)
        self.steps = []
        self.step_nodes = []  # per step, the node it computes: for profiles (bench/graph_steps.py)
        self._context = context
        self._fresh = []  # (node, its input arrays, output shape, dtype) of the fresh outputs
        read = {t for node in nodes for t in node.inputs}
        # Each node output gets its own buffer: head tensors are small (SSDLite's largest is 20x20x672 floats),
        # and a buffer shared with a later node would break the per_anchor views that alias them. The exception:
        # the parts of a concat that can be written straight into its buffer (in_place_concats) are.
        in_place = in_place_concats(nodes, shapes, outputs)
        part_of = {part: (concat, offset) for concat, parts in in_place.items() for part, offset in parts.items()}
        for concat in in_place:
            tensors[concat] = aligned_empty(int(np.prod(shapes[concat]))).reshape(shapes[concat])
        for node in nodes:
            kind, ins = NODE_KINDS[node.kind], [tensors[t] for t in node.inputs]
            if kind.alias is not None:
                tensors[node.name] = kind.alias(node, ins)
                continue
            if node.name in in_place:
                continue  # its parts wrote it
            dtype = np.int32 if node.kind in INTEGER_OUTPUT_KINDS else np.float32
            if node.name in fresh:
                if node.name in read or node.name in part_of or node.name not in outputs:
                    raise ValueError(f"node {node.name}: a fresh output must be an output that no other node reads")
                self._fresh.append((node, ins, shapes[node.name], dtype))
                continue
            size = int(np.prod(shapes[node.name]))
            if node.name in part_of:
                concat, offset = part_of[node.name]
                out = tensors[concat].reshape(-1)[offset:offset + size].reshape(shapes[node.name])
            else:
                out = (aligned_empty(size) if dtype == np.float32 else np.empty(size, dtype)).reshape(shapes[node.name])
            tensors[node.name] = out
            self.steps.extend(kind.bind(node, ins, out, context))
            self.step_nodes += [node.name] * (len(self.steps) - len(self.step_nodes))
        missing = [name for name in fresh if name not in {node.name for node, *_ in self._fresh}]
        if missing:
            raise ValueError(f"fresh output {missing[0]!r} is not a head node of a kernel kind")
        self.outputs = {name: tensors[name] for name in outputs if name not in fresh}

    def run(self, x):
        """Run backbone and head on ``x`` (N, H, W, 3) float32 C-contiguous; {output name: array}: views that the
        next run overwrites, except the ``fresh`` outputs, new arrays."""
        self.backbone.run(x)
        for kernel, args in self.steps:
            kernel(*args)
        results = dict(self.outputs)
        for node, ins, shape, dtype in self._fresh:
            size = int(np.prod(shape))
            out = (aligned_empty(size) if dtype == np.float32 else np.empty(size, dtype)).reshape(shape)
            for kernel, args in NODE_KINDS[node.kind].bind(node, ins, out, self._context):
                kernel(*args)
            results[node.name] = out
        return results
