"""The parts of the TFLite schema (tensorflow/compiler/mlir/lite/schema/schema.fbs) tinynet reads.

``read_graph(data)`` decodes the main subgraph of a .tflite file into plain Python objects:
tensors (shape, type, constant data, quantization) and operators (name, inputs, outputs, the
builtin options tinynet uses), in execution order. Field slots below follow the schema's field
order; a union occupies two slots (type, value).
"""
from dataclasses import dataclass, field

import numpy as np

from tinynet.errors import UnsupportedModelError, WeightsError
from tinynet.formats.flatbuffer import Buffer

# BuiltinOperator enum, by value (schema.fbs); codes past the end are reported by number.
OPERATOR_NAMES = """ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE
EMBEDDING_LOOKUP FLOOR FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D LOCAL_RESPONSE_NORMALIZATION
LOGISTIC LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU RELU_N1_TO_1 RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX
SPACE_TO_DEPTH SVDF TANH CONCAT_EMBEDDINGS SKIP_GRAM CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD
UNIDIRECTIONAL_SEQUENCE_RNN GATHER BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB DIV SQUEEZE
UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN EXP TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE
BIDIRECTIONAL_SEQUENCE_LSTM CAST PRELU MAXIMUM ARG_MAX MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL
SELECT SLICE SIN TRANSPOSE_CONV SPARSE_TO_DENSE TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW
ARG_MIN FAKE_QUANT REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK REDUCE_MIN
FLOOR_DIV REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD RANGE RESIZE_NEAREST_NEIGHBOR LEAKY_RELU
SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V UNIQUE CEIL REVERSE_V2 ADD_N GATHER_ND COS WHERE RANK ELU
REVERSE_SEQUENCE MATRIX_DIAG QUANTIZE MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE NON_MAX_SUPPRESSION_V4
NON_MAX_SUPPRESSION_V5 SCATTER_ND SELECT_V2 DENSIFY SEGMENT_SUM BATCH_MATMUL PLACEHOLDER_FOR_GREATER_OP_CODES
CUMSUM CALL_ONCE BROADCAST_TO RFFT2D CONV_3D IMAG REAL COMPLEX_ABS HASHTABLE HASHTABLE_FIND HASHTABLE_IMPORT
HASHTABLE_SIZE REDUCE_ALL CONV_3D_TRANSPOSE VAR_HANDLE READ_VARIABLE ASSIGN_VARIABLE BROADCAST_ARGS
RANDOM_STANDARD_NORMAL BUCKETIZE RANDOM_UNIFORM MULTINOMIAL GELU DYNAMIC_UPDATE_SLICE RELU_0_TO_1""".split()

# TensorType enum -> numpy dtype (None: a type tinynet never reads data of).
TENSOR_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 5: None, 6: np.bool_,
                7: np.int16, 8: None, 9: np.int8, 10: np.float64}

# Bounds on what a file may make the reader build (the TFLite MobileNets seen have < 300 tensors and
# operators, names < 1300 bytes, at most 6 inputs per operator): with them, and the lazily decoded
# buffer list, the decoded graph stays under about 200 MB whatever the file declares, even when every
# entry of a million-entry vector points at one table (4 bytes of file each).
MAX_TENSORS = 20_000
MAX_OPERATORS = 10_000
MAX_OPERATOR_CODES = 1_000
MAX_RANK = 8
MAX_OPERANDS = 256  # inputs or outputs of one operator
MAX_NAME_BYTES = 4096  # longer names are cut: they only appear in messages

# BuiltinOptions union member index and the field slots tinynet reads, per operator.
CONV_OPTIONS = (1, {"padding": (0, "b"), "stride_w": (1, "i"), "stride_h": (2, "i"), "activation": (3, "b"),
                    "dilation_w": (4, "i", 1), "dilation_h": (5, "i", 1)})
DEPTHWISE_OPTIONS = (2, {"padding": (0, "b"), "stride_w": (1, "i"), "stride_h": (2, "i"),
                         "activation": (4, "b"), "dilation_w": (5, "i", 1), "dilation_h": (6, "i", 1)})
POOL_OPTIONS = (5, {"padding": (0, "b"), "stride_w": (1, "i"), "stride_h": (2, "i"), "filter_w": (3, "i"),
                    "filter_h": (4, "i"), "activation": (5, "b")})
ACTIVATION_ONLY = {"activation": (0, "b")}
OPTIONS = {
    "CONV_2D": CONV_OPTIONS, "DEPTHWISE_CONV_2D": DEPTHWISE_OPTIONS,
    "AVERAGE_POOL_2D": POOL_OPTIONS,
    "CONCATENATION": (10, {"axis": (0, "i"), "activation": (1, "b")}),
    "FULLY_CONNECTED": (8, {"activation": (0, "b"), "weights_format": (1, "b")}),
    "ADD": (11, ACTIVATION_ONLY), "MUL": (21, ACTIVATION_ONLY), "SUB": (28, ACTIVATION_ONLY), "DIV": (29, ACTIVATION_ONLY),
    "MEAN": (27, {"keep_dims": (0, "?")}),
    "SOFTMAX": (9, {"beta": (0, "f", 1.0)}),
    "RESIZE_BILINEAR": (15, {"align_corners": (2, "?", False), "half_pixel_centers": (3, "?", False)}),
    "ARG_MAX": (40, {"output_type": (0, "b", 4)}),
}


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple
    dtype: object  # numpy dtype, or None for types tinynet does not read
    type_code: int
    data: np.ndarray = None  # raw constant values in ``shape``, None for activations
    scale: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))
    zero_point: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    quantized_dimension: int = 0

    def describe(self):
        return f"tensor {self.index} '{self.name}'"

    @property
    def is_constant(self):
        return self.data is not None

    def values(self):
        """The constant's real values as float64: ``scale * (q - zero_point)`` for quantized tensors,
        per channel along ``quantized_dimension`` when there are several scales."""
        if self.data is None:
            raise WeightsError(f"{self.describe()} is not a constant")
        q = self.data.astype(np.float64)
        n = self.scale.size
        if n == 0:
            return q
        if self.zero_point.size not in (0, 1, n):
            raise WeightsError(f"{self.describe()} has {n} scales but {self.zero_point.size} zero points")
        zero_point = self.zero_point.astype(np.float64) if self.zero_point.size else np.zeros(1)
        if n == 1:
            return (q - zero_point[0]) * float(self.scale[0])
        axis = self.quantized_dimension
        if not (0 <= axis < len(self.shape) and self.shape[axis] == n):
            raise WeightsError(f"{self.describe()} of shape {self.shape} has {n} scales along dimension {axis}")
        along_axis = [n if d == axis else 1 for d in range(len(self.shape))]
        scale = self.scale.astype(np.float64).reshape(along_axis)
        return (q - (zero_point.reshape(along_axis) if zero_point.size == n else zero_point[0])) * scale

    def grid(self):
        """(lo, step, levels) of the values a per-tensor quantized activation can hold, or None."""
        real = self.real_range()
        if real is None:
            return None
        info = np.iinfo(self.dtype)
        return real[0], float(self.scale[0]), int(info.max) - int(info.min) + 1

    def real_range(self):
        """(lo, hi) of the real values a quantized activation tensor can hold, or None if not quantized."""
        info = np.iinfo(self.dtype) if self.dtype is not None and np.issubdtype(self.dtype, np.integer) else None
        if info is None or self.scale.size != 1:
            return None
        zero_point = int(self.zero_point[0]) if self.zero_point.size else 0
        scale = float(self.scale[0])
        return scale * (info.min - zero_point), scale * (info.max - zero_point)


@dataclass
class Operator:
    index: int
    name: str  # BuiltinOperator name, e.g. "CONV_2D"
    inputs: tuple  # tensor indices, -1 for an omitted optional input
    outputs: tuple
    options: dict
    custom_options: bytes = b""  # a CUSTOM operator's options (a FlexBuffer for TFLite's own custom ops)

    def describe(self):
        return f"operator {self.index} ({self.name})"


@dataclass
class Graph:
    tensors: list
    operators: list
    inputs: tuple
    outputs: tuple
    file_bytes: int = 0  # size of the file: what its readers may allocate is budgeted from it


def read_graph(data, what="TFLite file"):
    """Decode the main subgraph of a TFLite flatbuffer (bytes). Raises WeightsError if it is corrupt."""
    buf = Buffer(data, what)
    model = buf.root(b"TFL3")
    codes = [_operator_name(t) for t in model.tables(1, "operator_codes", MAX_OPERATOR_CODES)]
    subgraphs = model.tables(2, "subgraphs")
    if not subgraphs:
        buf.fail("it has no subgraph")
    buffers = model.tables(4, "buffers")
    sub = subgraphs[0]
    tensors = [_tensor(buf, i, t, buffers) for i, t in enumerate(sub.tables(0, "tensors", MAX_TENSORS))]
    operators = []
    for i, op in enumerate(sub.tables(3, "operators", MAX_OPERATORS)):
        code = op.scalar(0, "I")
        if code >= len(codes):
            buf.fail(f"operator {i} uses operator code {code}, but the file defines {len(codes)}")
        operators.append(_operator(buf, i, op, codes[code], len(tensors)))
    inputs, outputs = (tuple(int(t) for t in sub.array(slot, np.int32)) for slot in (1, 2))
    for t in inputs + outputs:
        if not 0 <= t < len(tensors):
            buf.fail(f"graph input/output refers to tensor {t}, but there are {len(tensors)}")
    return Graph(tensors, operators, inputs, outputs, len(data))


def _operator_name(code):
    # Files before schema 3a fill only the byte field, newer ones both (or only the int for codes >= 127).
    builtin = max(code.scalar(3, "i"), code.scalar(0, "b"))
    if builtin == OPERATOR_NAMES.index("CUSTOM"):
        return f"CUSTOM '{code.string(1, max_bytes=100)}'"
    return OPERATOR_NAMES[builtin] if 0 <= builtin < len(OPERATOR_NAMES) else f"builtin operator {builtin}"


def _tensor(buf, index, table, buffers):
    dims = table.array(0, np.int32, f"tensor {index} shape")
    if dims.size > MAX_RANK:
        buf.fail(f"tensor {index} has {dims.size} dimensions; at most {MAX_RANK} are allowed")
    shape = tuple(int(d) for d in dims)
    if any(d < 0 for d in shape):
        buf.fail(f"tensor {index} has a negative dimension in shape {shape}")
    type_code = table.scalar(1, "b")
    dtype = TENSOR_TYPES.get(type_code)
    tensor = Tensor(index, table.string(3, max_bytes=MAX_NAME_BYTES), shape, None if dtype is None else np.dtype(dtype), type_code)
    quant = table.table(4, f"tensor {index} quantization")
    if quant is not None:
        tensor.scale = quant.array(2, np.float32, f"tensor {index} scales")
        tensor.zero_point = quant.array(3, np.int64, f"tensor {index} zero points")
        tensor.quantized_dimension = quant.scalar(6, "i")
    raw = _buffer_bytes(buf, index, table.scalar(2, "I"), buffers)
    if len(raw):
        if dtype is None:
            raise UnsupportedModelError(f"tensor {index} '{tensor.name}' holds data of TensorType {type_code}, which tinynet does not read")
        count = int(np.prod(shape, dtype=object)) if shape else 1
        if count * tensor.dtype.itemsize != len(raw):
            buf.fail(f"tensor {index} '{tensor.name}' has {len(raw)} bytes of data but shape {shape} "
                     f"of {tensor.dtype} needs {count * tensor.dtype.itemsize}")
        tensor.data = np.frombuffer(raw, tensor.dtype.newbyteorder("<"), count).reshape(shape)
    return tensor


def _buffer_bytes(buf, tensor_index, buffer_index, buffers):
    if buffer_index >= len(buffers):
        buf.fail(f"tensor {tensor_index} refers to buffer {buffer_index}, but the file has {len(buffers)}")
    table = buffers[buffer_index]
    offset, size = table.scalar(1, "Q"), table.scalar(2, "Q")
    if offset > 1:  # models over 2 GB keep data after the flatbuffer, addressed from the file start
        buf.check(offset, size, f"buffer {buffer_index}")
        return buf.data[offset:offset + size]
    return table.bytes(0, f"buffer {buffer_index}")


def _operator(buf, index, table, name, n_tensors):
    operands = [table.array(slot, np.int32, f"operator {index} tensors") for slot in (1, 2)]
    if max(a.size for a in operands) > MAX_OPERANDS:
        buf.fail(f"operator {index} ({name}) has {operands[0].size} inputs and {operands[1].size} outputs; "
                 f"at most {MAX_OPERANDS} of each are allowed")
    inputs, outputs = (tuple(int(t) for t in a) for a in operands)
    for t in inputs + outputs:
        if not -1 <= t < n_tensors:
            buf.fail(f"operator {index} ({name}) refers to tensor {t}, but there are {n_tensors}")
    options = {}
    if name in OPTIONS:
        union_index, fields = OPTIONS[name]
        found = table.scalar(3, "B")
        table_options = table.table(4, f"operator {index} options")
        if table_options is not None and found != union_index:
            buf.fail(f"operator {index} ({name}) carries options of union type {found}, expected {union_index}")
        for key, (slot, fmt, *default) in fields.items():
            default = default[0] if default else 0
            options[key] = default if table_options is None else table_options.scalar(slot, fmt, default)
    custom = b""
    if name.startswith("CUSTOM"):
        offset, size = table.scalar(9, "Q"), table.scalar(10, "Q")
        if offset > 1:  # options of models over 2 GB live after the flatbuffer, addressed from the file start
            buf.check(offset, size, f"operator {index} custom options")
            custom = bytes(buf.data[offset:offset + size])
        else:
            custom = bytes(table.bytes(5, f"operator {index} custom options"))
    return Operator(index, name, inputs, outputs, options, custom)
