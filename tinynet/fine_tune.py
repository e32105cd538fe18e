"""``--fine-tune N``: train the last N blocks of the backbone together with the new head.

The blocks' input (tinynet.Model.tap of the layer before them) is cached like the features are, so the
frozen part of the backbone runs once per image and view; the tail is run and differentiated in float64
with tinynet.backprop, and trained with full-batch Adam (deterministic) from the pretrained weights and
the head tinynet.head fitted on them. The tail runs with float activations here; the stored model snaps
them to the base model's activation grid where it has one, so `tinynet eval` may differ by an image or two.
"""
import numpy as np

from tinynet import backprop
from tinynet.errors import TinynetError
from tinynet.kernels.padding import conv_output_size

TRAINABLE_OPS = ("pw", "dw", "se", "pool", "fc")
LEARNING_RATE = 1e-4
STEPS = 60


def tail_of(model, n_blocks):
    """(name of the layer whose output feeds the tail, the tail's layers): the last ``n_blocks`` blocks
    with weights before the classifier, and the pooling among them."""
    body = model.layers[:-1]
    # Blocks with weights (a pooling "block" has none): N=1 is the last block there is something to train in.
    blocks = list(dict.fromkeys(layer.block for layer in body if layer.op != "pool"))
    if not 1 <= n_blocks < len(blocks):
        raise TinynetError(f"fine_tune must be between 1 and {len(blocks) - 1} blocks for this model, got {n_blocks}")
    first = next(i for i, layer in enumerate(body) if layer.block == blocks[-n_blocks])
    tail = body[first:]
    unsupported = [layer for layer in tail if layer.op not in TRAINABLE_OPS]
    if unsupported:
        raise TinynetError(f"cannot fine-tune layer {unsupported[0].name} ({unsupported[0].op}): "
                           f"backward passes exist for {', '.join(TRAINABLE_OPS)}")
    return body[first - 1].name, tail


def _param_names(layer):
    if layer.op == "se":
        return [f"{layer.name}.reduce.w", f"{layer.name}.reduce.b", f"{layer.name}.expand.w", f"{layer.name}.expand.b"]
    return [f"{layer.name}.w", f"{layer.name}.b"] if layer.op != "pool" else []


class Tail:
    """The tail layers as a differentiable float64 function of their parameters."""

    def __init__(self, layers, weights, padding):
        self.layers, self.padding = layers, padding
        self.params = {n: np.asarray(weights[n], dtype=np.float64) for layer in layers for n in _param_names(layer)}

    def forward(self, x):
        """(features (N, D), tape for backward)."""
        tape, block, block_input = [], None, x
        for layer in self.layers:
            if layer.block != block:
                block, block_input = layer.block, x
            p = [self.params[n] for n in _param_names(layer)]
            if layer.op in ("pw", "fc"):
                z, _ = backprop.pointwise_forward(x, *p)
                y, _ = backprop.act_forward(z, layer.act)
                if layer.residual:
                    y = y + block_input
                tape.append((layer, x, z, None))
            elif layer.op == "dw":
                (h, pt), (w, pl) = (conv_output_size(s, layer.k, layer.stride, self.padding) for s in x.shape[1:3])
                z, cache = backprop.depthwise_forward(x, p[0], p[1], layer.stride, pt, pl, (h, w))
                y, _ = backprop.act_forward(z, layer.act)
                tape.append((layer, x, z, cache))
            elif layer.op == "se":
                y, cache = backprop.se_forward(x, *p)
                tape.append((layer, x, None, cache))
            else:  # pool
                y, _ = backprop.pool_forward(x)
                tape.append((layer, x, None, x.shape))
            x = y
        return x, tape

    def backward(self, tape, grad):
        """{parameter name: gradient} for d loss / d features ``grad``."""
        grads, pending = {}, {}  # pending: residual gradients waiting for their block's input
        blocks = [layer.block for layer, *_ in tape]
        for i in range(len(tape) - 1, -1, -1):
            layer, x, z, cache = tape[i]
            names = _param_names(layer)
            if layer.op in ("pw", "fc"):
                if layer.residual:
                    pending[layer.block] = pending.get(layer.block, 0) + grad
                dz = backprop.act_backward(z, layer.act, grad)
                grad, grads[names[0]], grads[names[1]] = backprop.pointwise_backward(x, self.params[names[0]], dz)
            elif layer.op == "dw":
                dz = backprop.act_backward(z, layer.act, grad)
                grad, grads[names[0]], grads[names[1]] = backprop.depthwise_backward(cache, self.params[names[0]], dz)
            elif layer.op == "se":
                grad, *g = backprop.se_backward(cache, self.params[names[0]], self.params[names[2]], grad)
                grads.update(zip(names, g))
            else:
                grad = backprop.pool_backward(cache, grad)
            if i == 0 or blocks[i - 1] != layer.block:  # the block's first layer: its input gets the residual too
                grad = grad + pending.pop(layer.block, 0)
        return grads


def train_tail(tail, x, y, sample_weight, w, b, l2, steps=STEPS, lr=LEARNING_RATE):
    """Full-batch Adam on tail parameters and head (w, b) from where they are; returns (w, b, losses)."""
    params = {**tail.params, "head.w": w.astype(np.float64), "head.b": b.astype(np.float64)}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in params.items()}
    s = sample_weight / sample_weight.sum()
    rows, losses = np.arange(len(y)), []
    for step in range(1, steps + 1):
        tail.params = {k: params[k] for k in tail.params}
        features, tape = tail.forward(x)
        logits = features @ params["head.w"] + params["head.b"]
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        losses.append(float(-(s * log_p[rows, y]).sum() + 0.5 * l2 * (params["head.w"] ** 2).sum()))
        d_logits = np.exp(log_p)
        d_logits[rows, y] -= 1
        d_logits *= s[:, None]
        grads = tail.backward(tape, d_logits @ params["head.w"].T)
        grads["head.w"] = features.T @ d_logits + l2 * params["head.w"]
        grads["head.b"] = d_logits.sum(axis=0)
        for k, g in grads.items():  # Adam
            m[k] = 0.9 * m[k] + 0.1 * g
            v2[k] = 0.999 * v2[k] + 0.001 * g * g
            params[k] = params[k] - lr * (m[k] / (1 - 0.9 ** step)) / (np.sqrt(v2[k] / (1 - 0.999 ** step)) + 1e-8)
    tail.params = {k: params[k] for k in tail.params}
    return params["head.w"], params["head.b"], losses
