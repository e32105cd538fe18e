"""A classifier from a quantized .tflite file that runs its integer graph: ``QuantizedModel``.

    model = tinynet.load("mobilenet_v2_1.0_224_quant.tflite")           # model.precision == "int8"
    model.forward(pixels)      # uint8 (N, H, W, 3) as the file takes them, or the preprocessed float batch
    model.classify("cat.jpg")  # labels and probabilities from the integer outputs

Everything about the architecture (layers, counts, labels, preprocessing, ``embed`` for training a head) is the
float model read from the same file (tinynet.formats.tflite); only ``forward`` and ``probabilities`` run the
file's own integer graph (tinynet.quantized.program), whose output is dequantized as LiteRT's users do.
"""
import numba
import numpy as np

from tinynet.errors import TinynetError
from tinynet.formats.tflite import IMAGENET_WITH_BACKGROUND, STORED_TENSOR
from tinynet.model import Model
from tinynet.quantized.ops import Quant
from tinynet.quantized.program import Program
from tinynet.tasks.classification import softmax
from tinynet.threads import resolve as resolve_threads
from tinynet.warmup import compile_notice


class QuantizedModel(Model):
    precision = "int8"

    def __init__(self, float_model, graph, profile="litert", file_bytes=None, input_range=None):
        """``input_range``: what the graph input takes for image bytes 0 and 255, when it differs from what the
        float model's first conv takes (a float input rescaled inside the graph: preprocess for the graph's)."""
        super().__init__(float_model.arch, float_model.layers, float_model.weights, float_model.padding,
                         float_model.meta, float_model.threads)
        self.file_bytes = file_bytes
        self.program = Program(graph, profile)
        self.profile = profile
        self.input_tensor, self.output_tensor = self.program.input_tensors[0], self.program.output_tensors[0]
        self.input_quant = Quant.of(self.input_tensor)
        if self.input_quant is None and input_range is not None:  # a float input: preprocess to its range
            self.meta["preprocess"] = {**self.meta.get("preprocess", {}), "range": [float(v) for v in input_range]}
        self.output_quant = Quant.of(self.output_tensor)
        classes = self.output_tensor.shape[-1]
        self.drops_background = classes == IMAGENET_WITH_BACKGROUND and self.num_classes == classes - 1
        # A file that ends in SOFTMAX (then maybe RESHAPE/DEQUANTIZE) outputs probabilities, not logits.
        ops = [o.op.name for o in self.program.operators]
        self.outputs_probabilities = next((name for name in reversed(ops)
                                           if name not in ("RESHAPE", "SQUEEZE", "DEQUANTIZE")), None) == "SOFTMAX"

    def __repr__(self):
        return f"<tinynet.QuantizedModel {self.arch} int8 profile={self.profile} kernels={self.program.kernels}>"

    def native_tensors(self):
        """The .tflite file itself, as one uint8 tensor: what tinynet's format (and so the store) keeps of an int8
        model, read again by tinynet.formats.tflite.from_stored."""
        if self.file_bytes is None:
            raise TinynetError(f"{self.arch} int8: this model was not read from a .tflite file, so there is none to store")
        return {STORED_TENSOR: np.frombuffer(self.file_bytes, np.uint8)}

    def forward(self, x):
        """The file's output for a batch, dequantized: (N, classes) float32 (class 0, "background", dropped
        from 1001-class files). ``x``: the file's own input bytes (uint8 (N, H, W, 3)), or a preprocessed float32
        batch (``preprocess``), quantized here to the file's input as round(x / scale) + zero_point."""
        x = self.file_input(x)
        numba.set_num_threads(resolve_threads(self.threads))  # per calling thread in Numba (see Model._run)
        with compile_notice(self.program), self._pooled_plan(("int8", x.shape[1:]), dict) as workspace:  # one per caller
            # each image's output copied: it lives in the workspace, which the next image's forward reuses
            out = np.stack([self.program.run([image[None]], workspace=workspace)[0][0].copy() for image in x])
        if self.output_quant is not None:
            out = (out.astype(np.int32) - self.output_quant.file_zero_point).astype(np.float32) * self.output_quant.scale
        return out[:, 1:] if self.drops_background else out

    def probabilities(self, x):
        p = self.forward(x)
        return p.astype(np.float64) if self.outputs_probabilities else softmax(p)

    def file_input(self, x):
        """``x`` as the file's input tensor: the file's own dtype and shape pass through; a preprocessed float32
        batch is quantized with the input's scale and zero point (round half to even, clamped)."""
        expected = self.input_tensor.shape[1:]
        if isinstance(x, np.ndarray) and x.dtype == self.input_tensor.dtype and x.ndim == 4 and x.shape[1:] == expected:
            return x
        x = self._check_input(x)
        if x.shape[1:] != expected:
            raise TinynetError(f"this int8 model's graph takes {expected[0]}x{expected[1]} images, got shape {x.shape}")
        if self.input_quant is None:
            return x
        q = np.rint(x / self.input_quant.scale) + self.input_quant.file_zero_point
        info = np.iinfo(self.input_tensor.dtype)
        return np.clip(q, info.min, info.max).astype(self.input_tensor.dtype)
