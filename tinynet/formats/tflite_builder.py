"""A TFLite (FlatBuffers) writer: tinynet.formats.tflite_writer exports models with it, and the tests build
small graphs with exactly known tensors with it.

Written from the FlatBuffers format and tflite's schema.fbs (field order), independently of
tinynet's reader (tinynet.formats.flatbuffer, tflite). Like FlatBuffers' own builders it lays objects out back to
front, so every reference (uint32, relative to where it is stored) points forward, to an object built earlier.

    g = Graph()
    x = g.input((1, 32, 32, 3))
    y = g.op("CONV_2D", [x, g.const(w), g.const(b)], (1, 16, 16, 8), stride=2, act="RELU6")
    data = g.finish(y)
"""
import struct

import numpy as np

OPCODES = {"ADD": 0, "AVERAGE_POOL_2D": 1, "CONCATENATION": 2, "CONV_2D": 3, "DEPTHWISE_CONV_2D": 4, "DEQUANTIZE": 6,
           "FULLY_CONNECTED": 9, "LOGISTIC": 14, "MUL": 18, "RELU": 19, "RELU6": 21, "RESHAPE": 22, "RESIZE_BILINEAR": 23,
           "SOFTMAX": 25, "CUSTOM": 32, "PAD": 34, "BATCH_TO_SPACE_ND": 37, "SPACE_TO_BATCH_ND": 38, "MEAN": 40,
           "SUB": 41, "ARG_MAX": 56, "QUANTIZE": 114, "HARD_SWISH": 117}
TYPES = {np.dtype(np.float32): 0, np.dtype(np.float16): 1, np.dtype(np.int32): 2, np.dtype(np.uint8): 3,
         np.dtype(np.int64): 4, np.dtype(np.int8): 9}
ACTIVATIONS = {None: 0, "RELU": 1, "RELU6": 3}
PADDING = {"SAME": 0, "VALID": 1}


class Builder:
    """FlatBuffer bytes built from the back: the chunks are the end of the file, newest first; an object is named
    by its distance from the end of the file (which never changes). Chunks are joined once at the end, so a model
    of many megabytes of weights is not copied again for every object put in front of it."""

    def __init__(self):
        self.chunks, self.size = [], 0

    def _push(self, data):
        self.chunks.append(bytes(data))
        self.size += len(data)

    def _prepend(self, data, align=4):
        pad = (-(self.size + len(data))) % align
        self._push(bytes(data) + b"\0" * pad)
        return self.size

    def vector(self, values, fmt):
        values = list(values)
        itemsize = struct.calcsize("<" + fmt)
        body = struct.pack(f"<{len(values)}{fmt}", *values)
        # The elements (after the 4-byte length) must sit on their own alignment.
        pad = (-(self.size + len(body))) % max(itemsize, 4)
        self._push(body + b"\0" * pad)
        return self._prepend(struct.pack("<I", len(values)))

    def bytes_vector(self, data, align=16):
        pad = (-(self.size + len(data))) % align
        self._push(bytes(data) + b"\0" * pad)
        return self._prepend(struct.pack("<I", len(data)))

    def string(self, text):
        data = text.encode()
        pad = (-(self.size + len(data) + 1)) % 4
        self._push(data + b"\0" + b"\0" * pad)
        return self._prepend(struct.pack("<I", len(data)))

    def offsets(self, refs):
        """A vector of references to objects built earlier."""
        refs = list(refs)
        self._push(b"\0" * ((-self.size) % 4))
        start = self.size + 4 * len(refs)  # distance from the end of the first element
        self._push(b"".join(struct.pack("<I", (start - 4 * i) - ref) for i, ref in enumerate(refs)))
        return self._prepend(struct.pack("<I", len(refs)))

    def table(self, fields):
        """``fields``: {slot: (fmt, value)} scalars, or {slot: ("ref", object)} references."""
        layout, size = [], 4  # the soffset to the vtable comes first
        for slot in sorted(fields):
            fmt, value = fields[slot]
            width = 4 if fmt == "ref" else struct.calcsize("<" + fmt)
            size += (-size) % width
            layout.append((slot, fmt, value, size))
            size += width
        size += (-size) % 4
        end = self.size + size + (-(self.size + size)) % 8  # the table's distance from the file end
        body = bytearray(size)
        for slot, fmt, value, at in layout:
            if fmt == "ref":
                struct.pack_into("<I", body, at, (end - at) - value)
            else:
                struct.pack_into("<" + fmt, body, at, value)
        n_slots = max(fields, default=-1) + 1
        vtable = [0] * n_slots
        for slot, _, _, at in layout:
            vtable[slot] = at
        vtable_bytes = struct.pack(f"<HH{n_slots}H", 4 + 2 * n_slots, size, *vtable)
        struct.pack_into("<i", body, 0, len(vtable_bytes))  # the vtable sits right before the table
        if self._prepend(body, 8) != end:
            raise AssertionError("FlatBuffer table misplaced")  # a bug here, never a user's mistake
        self._push(vtable_bytes)
        return end

    def finish(self, root, identifier=b"TFL3"):
        pad = (-(self.size + 8)) % 16
        self._push(b"\0" * pad)
        total = self.size + 8
        return struct.pack("<I", total - root) + identifier + b"".join(reversed(self.chunks))


class Graph:
    """One subgraph, built tensor by tensor and operator by operator, in execution order."""

    def __init__(self):
        self.tensors, self.operators, self.inputs = [], [], []

    def tensor(self, shape, dtype=np.float32, data=None, quant=None, name=None):
        """Add a tensor; ``quant`` = (scale, zero_point[, quantized_dimension]) with scalars or arrays."""
        index = len(self.tensors)
        self.tensors.append({"shape": tuple(shape), "dtype": np.dtype(dtype), "data": data, "quant": quant,
                             "name": name or f"t{index}"})
        return index

    def const(self, array, quant=None, name=None):
        array = np.asarray(array)
        return self.tensor(array.shape, array.dtype, array, quant, name)

    def input(self, shape, dtype=np.float32, quant=None):
        index = self.tensor(shape, dtype, quant=quant, name="input")
        self.inputs.append(index)
        return index

    def op(self, name, inputs, out_shape, out_dtype=np.float32, out_quant=None, out_name=None, **options):
        out = self.tensor(out_shape, out_dtype, quant=out_quant, name=out_name)
        self.operators.append((name, list(inputs), [out], options))
        return out

    def custom(self, code, inputs, out_specs, options=b""):
        """A CUSTOM operator ``code`` with FlexBuffer ``options``; ``out_specs``: (shape, dtype) per output."""
        outs = [self.tensor(shape, dtype) for shape, dtype in out_specs]
        self.operators.append((f"CUSTOM:{code}", list(inputs), outs, {"custom_options": bytes(options)}))
        return outs

    def finish(self, output, description=None):
        """The .tflite bytes, with ``output`` (one tensor index or a list of them) as the subgraph's outputs and an
        optional model description."""
        b = Builder()
        opcode = lambda n: OPCODES["CUSTOM"] if n.startswith("CUSTOM:") else OPCODES[n]
        names = sorted({op[0] for op in self.operators}, key=lambda n: (opcode(n), n))
        codes = []
        for n in names:
            fields = {0: ("b", min(opcode(n), 127)), 2: ("i", 1), 3: ("i", opcode(n))}
            if n.startswith("CUSTOM:"):
                fields[1] = ("ref", b.string(n.split(":", 1)[1]))
            codes.append(b.table(fields))
        buffers = [b.table({})]  # buffer 0: the empty sentinel
        tensor_tables = []
        for t in self.tensors:
            buffer = 0
            if t["data"] is not None:
                data = np.ascontiguousarray(t["data"], t["dtype"].newbyteorder("<")).tobytes()
                buffers.append(b.table({0: ("ref", b.bytes_vector(data))}))
                buffer = len(buffers) - 1
            fields = {0: ("ref", b.vector(t["shape"], "i")), 1: ("b", TYPES[t["dtype"]]), 2: ("I", buffer),
                      3: ("ref", b.string(t["name"]))}
            if t["quant"] is not None:
                fields[4] = ("ref", _quantization(b, t["quant"]))
            tensor_tables.append(b.table(fields))
        op_tables = []
        for name, inputs, outputs, options in self.operators:
            fields = {0: ("I", names.index(name)), 1: ("ref", b.vector(inputs, "i")), 2: ("ref", b.vector(outputs, "i"))}
            if "custom_options" in options:  # custom_options (ubyte vector), custom_options_format 0: FlexBuffers
                fields[5] = ("ref", b.bytes_vector(options["custom_options"], align=4))
            union = _options(name, options)
            if union is not None:
                union_type, option_fields = union
                fields[3] = ("B", union_type)
                fields[4] = ("ref", b.table(option_fields))
            op_tables.append(b.table(fields))
        subgraph = b.table({0: ("ref", b.offsets(tensor_tables)), 1: ("ref", b.vector(self.inputs, "i")),
                            2: ("ref", b.vector(np.atleast_1d(output).tolist(), "i")),
                            3: ("ref", b.offsets(op_tables))})
        model = {0: ("I", 3), 1: ("ref", b.offsets(codes)), 2: ("ref", b.offsets([subgraph])),
                 4: ("ref", b.offsets(buffers))}
        if description is not None:
            model[3] = ("ref", b.string(description))
        model = b.table(model)
        return b.finish(model)


def _quantization(b, quant):
    scale, zero_point, *axis = quant
    fields = {2: ("ref", b.vector(np.atleast_1d(scale).astype(float), "f")),
              3: ("ref", b.vector(np.atleast_1d(zero_point).astype(int), "q"))}
    if axis:
        fields[6] = ("i", axis[0])
    return b.table(fields)


def _options(name, o):
    """BuiltinOptions union (type index, table fields) for the operators tests build, per schema.fbs."""
    act = ("b", ACTIVATIONS[o.get("act")])
    if name == "CONV_2D":
        return 1, {0: ("b", PADDING[o.get("padding", "SAME")]), 1: ("i", o.get("stride", 1)),
                   2: ("i", o.get("stride", 1)), 3: act}
    if name == "DEPTHWISE_CONV_2D":
        return 2, {0: ("b", PADDING[o.get("padding", "SAME")]), 1: ("i", o.get("stride", 1)),
                   2: ("i", o.get("stride", 1)), 3: ("i", 1), 4: act, 5: ("i", o.get("dilation", 1)),
                   6: ("i", o.get("dilation", 1))}
    if name == "AVERAGE_POOL_2D":
        return 5, {0: ("b", PADDING["VALID"]), 1: ("i", 1), 2: ("i", 1), 3: ("i", o["filter"]), 4: ("i", o["filter"]), 5: act}
    if name == "FULLY_CONNECTED":
        return 8, {0: act}
    if name in ("ADD", "MUL", "SUB"):
        return {"ADD": 11, "MUL": 21, "SUB": 28}[name], {0: act}
    if name == "MEAN":
        return 27, {0: ("?", o.get("keep_dims", False))}
    if name == "RESIZE_BILINEAR":  # ResizeBilinearOptions: 0, 1 deprecated new_height/new_width
        return 15, {2: ("?", o.get("align_corners", False)), 3: ("?", o.get("half_pixel_centers", False))}
    if name == "SOFTMAX":
        return 9, {0: ("f", o.get("beta", 1.0))}
    if name == "CONCATENATION":
        return 10, {0: ("i", o["axis"]), 1: act}
    return None
