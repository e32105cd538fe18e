"""The layers of a Model in execution order with what an exported graph needs to wire them: shared by the
ONNX and TFLite writers, so that both follow the data flow tinynet.plan runs."""
from dataclasses import dataclass

from tinynet.errors import UnsupportedModelError

EXPORTABLE_OPS = ("conv", "dw", "pw", "se", "pool", "fc")


@dataclass(frozen=True)
class Step:
    layer: object  # tinynet.spec.Layer
    weights: dict  # part ("w", "b", "reduce.w", ...) -> float32 array in tinynet's layout (tinynet.spec)
    source: int  # index of the step whose output this one reads; -1 is the network input
    residual: int = None  # index of the step whose output is added after this one (a block's input), if any


def walk(model):
    """[Step, ...] for ``model.layers``; a layer kind the writers do not know is an UnsupportedModelError."""
    steps, block, block_input = [], None, -1
    for i, layer in enumerate(model.layers):
        if layer.op not in EXPORTABLE_OPS:
            raise UnsupportedModelError(f"cannot export layer {layer.name} ({layer.op}): the exporters know "
                                        f"{', '.join(EXPORTABLE_OPS)}")
        if layer.block != block:
            block, block_input = layer.block, i - 1
        prefix = layer.name + "."
        weights = {name[len(prefix):]: array for name, array in model.weights.items() if name.startswith(prefix)}
        steps.append(Step(layer, weights, i - 1, block_input if layer.residual else None))
    return steps


def uint8_grid(name, grid):
    """(scale, zero point) of the 8-bit grid (lo, step, levels) a layer's output is snapped to, as the formats'
    quantize-dequantize pairs express it: lo must be -zero_point * step with an integer zero point in 0..255."""
    lo, step, levels = grid
    zero_point = round(-lo / step)
    if levels != 256 or not 0 <= zero_point <= 255 or abs(zero_point * step + lo) > 1e-6 * step:
        raise UnsupportedModelError(f"layer {name}: its activation grid (lo {lo}, step {step}, {levels} levels) is not a "
                                    f"uint8 grid; export with float activations instead")
    return float(step), int(zero_point)
