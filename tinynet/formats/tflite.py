"""Import TFLite MobileNets (float, uint8 quantization-aware-trained, int8 post-training quantized).

    model = tinynet.load("mobilenet_v2_1.0_224_quant.tflite")

The file is decoded by tinynet's own FlatBuffers reader (tflite_schema), the graph is reduced to
layer steps (tflite_graph), and the steps are matched against each layer table in
tinynet.architectures: the first table whose every row the graph follows, kernel sizes, strides,
activations, squeeze-excite and residuals included, gives the architecture. Weights are
dequantized to float32 (BatchNorm is already folded in these files), checked against the shapes
tinynet.spec expects, and the TF conventions travel in ``Model.meta``: "tf_same" padding and the
input range the first conv expects. Classifiers with 1001 outputs (0 = "background") lose class
0, so every imported model speaks the 1000 ImageNet classes in synset order.

A file that ends in TFLite_Detection_PostProcess (a TF Object Detection API SSD) loads as a detection model
instead (tinynet.formats.tflite_detection, tinynet.detection.tflite_ssd and tflite_model), and one that ends in
an ARG_MAX over a map's channels (TF DeepLab) as a segmentation model (tinynet.formats.tflite_segmentation,
tinynet.segmentation.tflite_deeplab and tflite_model).
"""
from pathlib import Path

import numpy as np

from tinynet.architectures import ARCHITECTURES, EXPANSION_IS_RATIO, rows
from tinynet.errors import UnsupportedModelError, WeightsError
from tinynet.formats.tflite_detection import is_detection_graph, read_detection_graph
from tinynet.formats.tflite_graph import walk
from tinynet.formats.tflite_segmentation import is_segmentation_graph, read_segmentation_graph
from tinynet.formats.tflite_schema import read_graph
from tinynet.model import Model
from tinynet.spec import check_weights, layers_for_weights

MAX_FILE_BYTES = 2 ** 31  # read into memory whole; MobileNets take a few MB
IMAGENET_WITH_BACKGROUND = 1001


PRECISIONS = ("int8", "float")
STORED_TENSOR = "tflite"  # a model kept in tinynet's format as its .tflite file: the file's bytes, one uint8 tensor


def load(path, arch=None, precision=None, profile="litert"):
    """A tinynet Model from the .tflite file at ``path``; ``arch`` restricts matching to one architecture.

    A quantized classifier runs its integer graph (``precision`` "int8", the default for such files, with the
    arithmetic of ``profile``: tinynet.quantized); ``precision="float"`` runs it dequantized in float32."""
    if precision not in (None, *PRECISIONS):
        raise UnsupportedModelError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    path = Path(path)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise WeightsError(f"{path.name} is larger than 2 GiB; tinynet reads TFLite MobileNets, which take a few MB")
    return from_bytes(path.read_bytes(), path.name, arch, precision, profile)


def from_stored(tensors, meta, arch=None, precision=None, profile="litert"):
    """A model that tinynet's format keeps as its .tflite file (a quantized classifier, the TF-OD SSD): the file is
    read again, with all of this reader's checks, and the stored metadata (labels, source) put over its own."""
    data = tensors.get(STORED_TENSOR)
    if len(tensors) != 1 or data is None or data.dtype != np.uint8 or data.ndim != 1:
        raise WeightsError(f"a stored .tflite model holds one 1-D uint8 tensor {STORED_TENSOR!r}: its file")
    model = from_bytes(data.tobytes(), str(meta.get("source", "stored model")), arch, precision, profile)
    model.meta.update(meta)
    return model


def from_bytes(data, name, arch=None, precision=None, profile="litert"):
    """A tinynet Model from the content ``data`` of a .tflite file called ``name`` (for messages and the source);
    ``precision`` and ``profile`` as for ``load``."""
    graph = read_graph(data, f"TFLite file {name}")
    if is_detection_graph(graph):
        return _detector(graph, data, name, arch, precision, profile)
    if is_segmentation_graph(graph):
        return _segmenter(graph, name, arch, precision, profile)
    steps = walk(graph)
    arch, matched = match(steps.steps, arch)
    weights, origin = _weights(matched)
    shapes = {n: w.shape for n, w in weights.items()}
    layers = layers_for_weights(arch, shapes)
    check_weights(layers, shapes, describe=lambda n: f"'{origin[n]}' ({n})")
    meta = {"preprocess": {"preset": "tf", "size": steps.input_size, "range": list(steps.input_range)},
            "source": f"tflite:{name}"}
    if steps.uint8_weights:
        meta["activation_grid"] = _activation_grid(matched, graph.tensors)
    if layers[-1].cout == 1000:
        meta["labels"] = "imagenet1k"
    model = Model(arch, layers, weights, "tf_same", meta)
    quantized = steps.uint8_weights or _has_integer_weights(graph)
    if precision == "int8" and not quantized:
        raise UnsupportedModelError(f"{name} is a float file: it has no integer graph to run (precision='float')")
    if quantized and precision != "float":
        from tinynet.quantized.model import QuantizedModel
        try:
            return QuantizedModel(model, graph, profile, file_bytes=data, input_range=steps.graph_input_range)
        except UnsupportedModelError:
            if precision == "int8":
                raise
            # e.g. quantized weights over float activations: no integer graph, the float path runs it
    return model


def _has_integer_weights(graph):
    return any(graph.tensors[op.inputs[1]].dtype in (np.uint8, np.int8) for op in graph.operators
               if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"))


def _detector(graph, data, name, arch, precision, profile="litert"):
    """A TF Object Detection API SSD (it ends in TFLite_Detection_PostProcess) as a detection model."""
    from tinynet.detection.tflite_model import TfliteSsdModel, labels_from_file
    from tinynet.detection.tflite_ssd import BACKBONE, ssd_network
    if arch not in (None, BACKBONE):
        raise UnsupportedModelError(f"{name} is an SSD detector on {BACKBONE}; --arch {arch} does not apply")
    detection = read_detection_graph(graph)
    network = ssd_network(detection)
    model = TfliteSsdModel(network, labels_from_file(data, network.options.num_classes), f"tflite:{name}",
                           file_bytes=data)
    if precision == "float":
        return model
    from tinynet.quantized.ssd import QuantizedSsdModel
    try:
        return QuantizedSsdModel(model, graph, profile)  # a quantized file: its integer graph
    except UnsupportedModelError:
        if precision == "int8":
            raise
        return model  # a float file, or one whose graph is not all integer


def _segmenter(graph, name, arch, precision, profile):
    """A TF DeepLab network (it ends in an ARG_MAX over the class channels) as a segmentation model."""
    from tinynet.segmentation.tflite_deeplab import BACKBONE, deeplab_network
    from tinynet.segmentation.tflite_model import ARCH, TfliteDeeplabModel
    if arch not in (None, ARCH, BACKBONE):
        raise UnsupportedModelError(f"{name} is a DeepLab segmentation network on {BACKBONE}; --arch {arch} "
                                    "does not apply")
    network = deeplab_network(read_segmentation_graph(graph))
    model = TfliteDeeplabModel(network, f"tflite:{name}")
    if precision == "int8" and network.output_grid is None:
        raise UnsupportedModelError(f"{name} is a float file: it has no integer graph to run (precision='float')")
    if network.output_grid is not None and precision != "float":  # a quantized file: its integer graph
        from tinynet.quantized.deeplab import QuantizedDeeplabModel
        return QuantizedDeeplabModel(model, graph, profile)
    return model


def _activation_grid(matched, tensors):
    """{layer name: [lo, step, levels]} of each conv layer's quantized output, the classifier excepted.

    TF1 exports quantization-aware-trained models with uint8 weights, and such a model was trained
    with its activations snapped to these grids; tinynet applies them (Model.quantized_activations).
    The logits stay unrounded: rounding them only creates ties."""
    grid = {}
    for name, step in matched[:-1]:
        values = tensors[step.output].grid() if step.kind in ("conv", "dw", "pw", "fc") else None
        if values is not None:
            grid[name] = list(values)
    return grid


class Divergence(Exception):
    """Where a graph's steps stop following a layer table."""

    def __init__(self, position, message):
        super().__init__(message)
        self.position = position


def match(steps, arch=None):
    """``(arch, [(tinynet layer name, step), ...])`` for the first architecture the steps follow.

    Raises UnsupportedModelError naming the architecture that matched longest and where it diverged."""
    candidates = [arch] if arch else list(ARCHITECTURES)
    failures = []
    for name in candidates:
        try:
            return name, _follow(name, steps)
        except Divergence as e:
            failures.append((e.position, name, str(e)))
    position, name, message = max(failures, key=lambda f: f[0])
    if arch:
        raise UnsupportedModelError(f"the graph is not a {arch}: {message}")
    raise UnsupportedModelError(f"the graph matches no architecture tinynet knows; closest is {name}: {message}")


def _follow(arch, steps):
    """Assign ``steps`` to the layers of ``arch``'s table in order, or raise Divergence."""
    table = rows(arch)
    cursor = _Cursor(steps)
    for i, row in enumerate(table):
        block = f"{i:02d}"
        where = f"block {block} ({row.kind})"
        if row.kind == "conv":
            cursor.take(f"{block}.conv", "conv" if row.k > 1 else "pw", where, row.k, row.s, row.act)
        elif row.kind == "ds":
            cursor.take(f"{block}.dw", "dw", where, row.k, row.s, row.act)
            cursor.take(f"{block}.pw", "pw", where, 1, 1, row.act)
        elif row.kind == "ir":
            first = cursor.position
            expansion = row.exp != 1 if arch in EXPANSION_IS_RATIO else cursor.peek_kinds(("pw", "dw"))
            if expansion:
                cursor.take(f"{block}.expand", "pw", where, 1, 1, row.act)
            cursor.take(f"{block}.dw", "dw", where, row.k, row.s, row.act)
            if row.se:
                cursor.take(f"{block}.se", "se", where)
            project = cursor.take(f"{block}.project", "pw", where, 1, 1, None)
            block_input = steps[first].input
            wants_residual = row.s == 1 and steps[first].cin == project.cout
            if (project.residual_from is not None) != wants_residual or project.residual_from not in (None, block_input):
                raise Divergence(cursor.position - 1, f"at {where}: {'a' if wants_residual else 'no'} residual connection "
                                 f"from the block input was expected after {project.describe()}")
        elif row.kind == "pool":
            cursor.take(f"{block}.pool", "pool", where)
        elif row.kind == "fc":
            cursor.take(f"{block}.fc", "fc", where, act=row.act)
    if cursor.position < len(steps):
        raise Divergence(cursor.position, f"the graph goes on after the classifier with {steps[cursor.position].describe()}")
    return cursor.layers


class _Cursor:
    """Reads steps in order, checking each against what the table expects next."""

    def __init__(self, steps):
        self.steps, self.position, self.layers = steps, 0, []

    def peek_kinds(self, kinds):
        ahead = self.steps[self.position:self.position + len(kinds)]
        return tuple(s.kind for s in ahead) == kinds

    def take(self, name, kind, where, k=1, stride=1, act=None):
        expected = _expected(kind, k, stride, act)
        if self.position >= len(self.steps):
            raise Divergence(self.position, f"at {where}: expected {expected}, but the graph ends")
        step = self.steps[self.position]
        fits = step.kind == kind and (kind in ("se", "pool") or
                                      ((step.k, step.stride) == (k, stride) and step.act.fits(act)))
        if not fits:
            raise Divergence(self.position, f"at {where} (graph layer {self.position}): expected {expected}, "
                                            f"found {step.describe()}")
        self.layers.append((name, step))
        self.position += 1
        return step


def _expected(kind, k, stride, act):
    what = {"conv": f"a {k}x{k} conv with stride {stride}", "dw": f"a {k}x{k} depthwise conv with stride {stride}",
            "pw": "a 1x1 conv", "se": "a squeeze-excite block", "pool": "a global average pool",
            "fc": "a fully connected layer"}[kind]
    return what if kind in ("se", "pool") else f"{what} with {act or 'no activation'}"


def _weights(layers):
    """Runtime weights (float32) and, for messages, the tflite tensor each came from."""
    weights, origin = {}, {}
    last_fc = max(i for i, (name, _) in enumerate(layers) if name.endswith(".fc"))
    for i, (name, step) in enumerate(layers):
        for part, value in step.weights.items():
            if i == last_fc and value.shape[-1] == IMAGENET_WITH_BACKGROUND:
                value = value[..., 1:]  # drop "background": output k + 1 is ImageNet class k
            weights[f"{name}.{part}"] = np.ascontiguousarray(value, np.float32)
            origin[f"{name}.{part}"] = step.sources[part] or f"bias of {step.op.describe()} (absent, zeros)"
    return weights, origin
