"""``Model``: concrete layers + runtime weights + the conventions that travel with them."""
import threading

import numba
import numpy as np

from tinynet.errors import TinynetError
from tinynet.plan import Plan
from tinynet.spec import check_weights, count, infer_width, layers_for_width

MIN_INPUT_SIZE = 32


class Model:
    """A MobileNet ready to run.

    arch     architecture name ("mobilenet_v2", ...; see tinynet.architectures)
    layers   concrete layers (tinynet.spec.Layer), in execution order
    weights  name -> float32 array in runtime layout, BatchNorm folded (see tinynet.spec)
    padding  "symmetric" (PyTorch-trained weights) or "tf_same" (TensorFlow-trained weights)
    meta     free-form metadata carried by the weights: "preprocess", "labels", "source", ...
    threads  threads for the parallel kernels; None uses Numba's default (all cores)

    One Model may be used from several threads at once: each concurrent call gets its own plan
    (kernel calls and activation buffers), and plans are reused afterwards.
    """

    def __init__(self, arch, layers, weights, padding="symmetric", meta=None, threads=None):
        check_weights(layers, weights)
        self.arch = arch
        self.layers = tuple(layers)
        self.weights = weights
        self.padding = padding
        self.meta = dict(meta or {})
        self.threads = threads
        self._idle_plans = {}  # (input shape, last layer) -> [Plan]
        self._lock = threading.Lock()

    @property
    def num_classes(self):
        return self.layers[-1].cout

    @property
    def width(self):
        """The width multiplier that reproduces this model's channel counts (None if no common one does)."""
        return infer_width(self.arch, self.layers)

    def __repr__(self):
        return f"<tinynet.Model {self.arch} width={self.width} classes={self.num_classes} padding={self.padding}>"

    def forward(self, x):
        """Logits for a preprocessed batch: ``x`` float32 (N, H, W, 3) -> (N, num_classes) float32."""
        return self._run(x, len(self.layers))

    def embed(self, x):
        """The pooled feature vector before the classifier: (N, H, W, 3) -> (N, C) float32."""
        pool = next(i for i, layer in enumerate(self.layers) if layer.op == "pool")
        return self._run(x, pool + 1)

    def count(self, resolution=224):
        """Parameters and MACs, totals and per layer (see tinynet.spec.count)."""
        return count(self.layers, resolution)

    def _run(self, x, n_layers):
        x = self._check_input(x)
        key = (x.shape, n_layers)
        with self._lock:
            idle = self._idle_plans.setdefault(key, [])
            plan = idle.pop() if idle else None
        if plan is None:
            threads = self.threads or numba.config.NUMBA_NUM_THREADS
            plan = Plan(self.layers[:n_layers], self.weights, self.padding, x.shape, threads)
        try:
            if self.threads:
                numba.set_num_threads(self.threads)  # per calling thread in Numba, so set on every call
            return plan.run(x).copy()
        finally:
            with self._lock:
                self._idle_plans[key].append(plan)

    @staticmethod
    def _check_input(x):
        if not isinstance(x, np.ndarray):
            raise TinynetError(f"expected a numpy array (N, H, W, 3), got {type(x).__name__}")
        if x.ndim == 3:
            raise TinynetError(f"expected a batch (N, H, W, 3), got shape {x.shape}: add a batch axis with x[None]")
        if x.ndim != 4 or x.shape[-1] != 3:
            hint = " (this looks like NCHW: use x.transpose(0, 2, 3, 1))" if x.ndim == 4 and x.shape[1] == 3 else ""
            raise TinynetError(f"expected NHWC input (N, H, W, 3), got shape {x.shape}{hint}")
        if min(x.shape[1:3]) < MIN_INPUT_SIZE or x.shape[0] < 1:
            raise TinynetError(f"input must be at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} with N >= 1, got shape {x.shape}")
        return np.ascontiguousarray(x, dtype=np.float32)


def create(arch, width=1.0, num_classes=1000, seed=0, padding="symmetric"):
    """A model of ``arch`` with seeded random weights (He-normal convs, small biases): for benchmarks,
    counting and tests. Architecture names as torchvision spells them, plus the "_minimalistic" V3s."""
    layers = layers_for_width(arch, width, num_classes)
    rng = np.random.default_rng(seed)
    weights = {}
    from tinynet.spec import weight_shapes

    for name, shape in weight_shapes(layers).items():
        if name.endswith(".b"):
            weights[name] = (0.01 * rng.standard_normal(shape)).astype(np.float32)
        else:
            fan_in = int(np.prod(shape[:-1])) if len(shape) != 3 else shape[0] * shape[1]
            weights[name] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    return Model(arch, layers, weights, padding, meta={"source": f"tinynet.create seed={seed}"})
