"""A quantized DeepLab .tflite that runs its integer graph: ``QuantizedDeeplabModel``.

    model = tinynet.load("deeplabv3_mnv2_pascal_quant.tflite")      # model.precision == "int8"
    model.forward(x)          # the file's resized uint8 logits, dequantized: what its ARG_MAX reads
    model.mask(x)             # the file's ARG_MAX: bit for bit LiteRT's mask at the input size
    model.segment("pets.jpg")  # that mask, resized (nearest) to the photo's own size, as a LiteRT user resizes it

The float model read from the same file (tinynet.segmentation.tflite_model) gives layers, counts, labels and
preprocessing; the integer graph (tinynet.quantized.program) gives the numbers.
"""
import numba
import numpy as np
from PIL import Image

from tinynet.labels import labels_for
from tinynet.quantized.ops import Quant
from tinynet.quantized.program import Program
from tinynet.segmentation.tflite_model import TfliteDeeplabModel
from tinynet.tasks.segmentation import Segmentation
from tinynet.threads import resolve as resolve_threads
from tinynet.warmup import compile_notice


class QuantizedDeeplabModel(TfliteDeeplabModel):
    precision = "int8"

    def __init__(self, float_model, graph, profile="litert"):
        self.__dict__.update(float_model.__dict__)
        argmax = next(op for op in reversed(graph.operators) if op.name == "ARG_MAX")
        resize = next(op for op in graph.operators if op.outputs[0] == argmax.inputs[0])
        self.low_res, self.logits, self.argmax = resize.inputs[0], resize.outputs[0], argmax.outputs[0]
        self.program = Program(graph, profile, outputs=(self.low_res, self.logits, self.argmax))
        self.profile = profile
        self.input_quant = Quant.of(self.program.input_tensors[0])

    def __repr__(self):
        return f"<tinynet.QuantizedDeeplabModel {self.arch} int8 profile={self.profile}>"

    def _run(self, x, output):
        """The program's ``output`` tensor for each image of batch ``x`` (preprocessed float or the file's bytes)."""
        if x.dtype != np.uint8:
            x = self._check_input(x)
            q = np.rint(x / self.input_quant.scale) + self.input_quant.file_zero_point
            x = np.clip(q, 0, 255).astype(np.uint8)
        numba.set_num_threads(resolve_threads(self.threads))
        with compile_notice(self.program), self._pooled_plan(("int8", x.shape[1:]), dict) as workspace:
            return np.stack([self.program.run([image[None]], workspace=workspace, outputs=(output,))[0][0].copy()
                             for image in x])  # copied: the next image's forward reuses the workspace

    def _dequantized(self, q, index):
        quant = Quant.of(self.program.graph.tensors[index])
        return (q.astype(np.int32) - quant.file_zero_point).astype(np.float32) * quant.scale

    def low_res_logits(self, x):
        return self._dequantized(self._run(x, self.low_res), self.low_res)

    def forward(self, x):
        return self._dequantized(self._run(x, self.logits), self.logits)

    def mask(self, x):
        """The file's own ARG_MAX: (N, H, W) class ids at the input size, as LiteRT gives them."""
        return self._run(x, self.argmax)

    def segment(self, images):
        if not isinstance(images, (list, tuple)):
            return self.segment([images])[0]
        names = labels_for(self)
        results = []
        for image in images:
            x, (height, width) = self.preprocess_with_size(image)
            mask = Image.fromarray(self.mask(x)[0].astype(np.uint8)).resize((width, height), Image.Resampling.NEAREST)
            mask = np.asarray(mask)
            results.append(Segmentation(mask, list(names), np.bincount(mask.ravel(), minlength=self.num_classes)))
        return results
