"""A quantized TF Object Detection API SSD .tflite that runs its integer graph: ``QuantizedSsdModel``.

    model = tinynet.load("ssd_mobilenet_v1.tflite")     # model.precision == "int8"
    model.forward(x)     # {"box_encodings", "class_scores"}: the postprocess's inputs, bit for bit LiteRT's
    model.detect("pets.jpg")

The float model read from the same file (tinynet.detection.tflite_model) gives the layers, anchors, labels,
preprocessing and the TFLite_Detection_PostProcess; the integer graph (tinynet.quantized.program) computes the head
tensors the postprocess reads, which are dequantized as the postprocess dequantizes them, (q - zp) * scale.
"""
import numba
import numpy as np

from tinynet.detection.tflite_model import TfliteSsdModel
from tinynet.detection.tflite_ssd import OUTPUTS
from tinynet.errors import TinynetError
from tinynet.quantized.ops import Quant
from tinynet.quantized.program import Program
from tinynet.threads import resolve as resolve_threads
from tinynet.warmup import compile_notice


class QuantizedSsdModel(TfliteSsdModel):
    precision = "int8"

    def __init__(self, float_model, graph, profile="litert"):
        self.__dict__.update(float_model.__dict__)
        postprocess = graph.operators[-1]
        self.heads = tuple(postprocess.inputs[:2])  # box encodings, class scores
        self.program = Program(graph, profile, outputs=self.heads)
        self.profile = profile
        self.input_quant = Quant.of(self.program.input_tensors[0])
        self.head_quants = [Quant.of(graph.tensors[t]) for t in self.heads]

    def __repr__(self):
        return f"<tinynet.QuantizedSsdModel {self.arch} int8 profile={self.profile}>"

    def forward(self, x):
        """The postprocess's inputs for a batch ``x`` (preprocessed float, or the file's uint8 bytes):
        {"box_encodings": (N, anchors, 4), "class_scores": (N, anchors, 1 + classes)} float32."""
        if x.dtype != np.uint8:
            x = self._check_input(x)
            q = np.rint(x / self.input_quant.scale) + self.input_quant.file_zero_point
            x = np.clip(q, 0, 255).astype(np.uint8)
        if x.shape[1:3] != self.network.input_size:
            raise TinynetError(f"expected a batch (N, {self.network.input_size[0]}, {self.network.input_size[1]}, 3), "
                               f"got {x.shape}; model.preprocess makes one")
        numba.set_num_threads(resolve_threads(self.threads))
        outputs = {name: [] for name in OUTPUTS}
        with compile_notice(self.program), self._pooled_plan(("int8", x.shape[1:]), dict) as workspace:
            for image in x:
                for name, q, quant in zip(OUTPUTS, self.program.run([image[None]], workspace=workspace),
                                          self.head_quants):
                    real = (q.astype(np.int32) - quant.file_zero_point).astype(np.float32) * quant.scale
                    outputs[name].append(real.reshape(-1, real.shape[-1]))
        return {name: np.stack(parts) for name, parts in outputs.items()}
