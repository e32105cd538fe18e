"""``Model``: concrete layers + runtime weights + the conventions that travel with them."""
import threading
from contextlib import contextmanager

import numba
import numpy as np

from tinynet import preprocess as preprocessing
from tinynet.errors import ImageError, TinynetError
from tinynet.labels import labels_for
from tinynet.plan import FUSE_MIN_FLOATS, NO_FUSION, Plan
from tinynet.tasks.classification import Prediction, softmax, top_labels  # noqa: F401  (tinynet.model API)
from tinynet.spec import check_weights, count, infer_width, layers_for_width
from tinynet.threads import resolve as resolve_threads
from tinynet.warmup import compile_notice, fusion_ready

MIN_INPUT_SIZE = 32
CLASSIFY_BATCH = 32  # images per forward in Model.classify: bounds memory for long lists


class Model:
    """A MobileNet ready to run.

    arch     architecture name ("mobilenet_v2", ...; see tinynet.architectures)
    layers   concrete layers (tinynet.spec.Layer), in execution order
    weights  name -> float32 array in runtime layout, BatchNorm folded (see tinynet.spec)
    padding  "symmetric" (PyTorch-trained weights) or "tf_same" (TensorFlow-trained weights)
    meta     free-form metadata carried by the weights: "preprocess", "labels", "source", ...
    threads  the most threads for the kernels (fewer while other processes hold cores); None uses
             tinynet.set_threads's value, else all cores (tinynet.threads)

    ``quantized_activations`` (default: True when the weights carry meta["activation_grid"]) snaps each
    layer's output to the 8-bit grid a quantization-aware-trained model was trained with (TF1 uint8
    .tflite exports). Those weights expect it: on ImageNet it is worth 2-3 points of top-1 for TF-slim's
    QAT MobileNet V3 files (weights/README.md). Set it to False for plain float activations.

    One Model may be used from several threads at once: each concurrent call gets its own plan
    (kernel calls and activation buffers), and plans are reused afterwards.
    """

    task = "classification"  # what the outputs mean (tinynet.tasks); detection models: tinynet.detection.model
    precision = "float"  # integer models of quantized files: tinynet.quantized.model

    def __init__(self, arch, layers, weights, padding="symmetric", meta=None, threads=None):
        check_weights(layers, weights, self._head_weight_shapes(layers))
        self.arch = arch
        self.layers = tuple(layers)
        self.weights = weights
        self.padding = padding
        self.meta = dict(meta or {})
        self.threads = threads
        self.quantized_activations = "activation_grid" in self.meta
        self._idle_plans = {}  # (input shape, last layer) -> [Plan]
        self._packed_weights = {}  # layer name -> weights packed for the kernels, shared by all plans (tinynet.plan)
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

    def probabilities(self, x):
        """Class probabilities (N, num_classes) float64 for a preprocessed batch: the softmax of ``forward``."""
        return softmax(self.forward(x))

    def embed(self, x):
        """The pooled feature vector before the classifier: (N, H, W, 3) -> (N, C) float32."""
        pool = next(i for i, layer in enumerate(self.layers) if layer.op == "pool")
        return self._run(x, pool + 1)

    def tap(self, x, names):
        """The outputs of the layers ``names`` (e.g. ["13.expand", "16.project"]) for a preprocessed batch ``x``
        (N, H, W, 3): {name: (N, h, w, C) float32}. Runs the layers only as far as the deepest one named;
        a tapped tensor is stored even where the plan would otherwise fuse it away."""
        names = tuple(dict.fromkeys(names))
        position = {layer.name: i for i, layer in enumerate(self.layers)}
        unknown = [name for name in names if name not in position]
        if unknown or not names:
            raise TinynetError(f"no layer named {unknown[0] if unknown else 'at all'!r} in this model "
                               f"(layers are named like {self.layers[1].name!r}; `tinynet info` lists them)")
        return self._run(x, max(position[name] for name in names) + 1, names)

    def classifier_input(self, x):
        """What the last (classifier) layer sees: the pooled features, or for MobileNet V3 the hidden
        layer after them. (N, H, W, 3) -> (N, C) float32; tinynet.train fits a new head on it."""
        return self._run(x, len(self.layers) - 1)

    def count(self, resolution=224):
        """Parameters and MACs, totals and per layer (see tinynet.spec.count)."""
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < MIN_INPUT_SIZE:
            raise TinynetError(f"resolution must be a whole number of pixels, at least {MIN_INPUT_SIZE} "
                               f"(the smallest input tinynet runs), got {resolution!r}")
        return count(self.layers, resolution, self.padding)

    def preprocess(self, image):
        """One image (a path, PIL image, NumPy array, bytes or binary file object; see
        tinynet.preprocess.open_image) as this model expects it (meta["preprocess"]): (1, H, W, 3) float32,
        ready for ``forward``. A list of images gives (N, H, W, 3)."""
        if isinstance(image, (list, tuple)):
            return preprocessing.batch(image, preprocessing.for_model(self))
        return preprocessing.to_array(image, preprocessing.for_model(self))[None]

    def preprocess_with_geometry(self, image):
        """One image as ``preprocess`` gives it, and the tinynet.geometry.Geometry applied (resize, crop), to map
        results in input pixels back onto the original image."""
        rgb = preprocessing.open_image(image)
        spec = preprocessing.for_model(self)
        return preprocessing.to_array(rgb, spec)[None], preprocessing.geometry(rgb.size[::-1], spec)

    def classify(self, images, top=5, batch_size=CLASSIFY_BATCH, errors="raise"):
        """The ``top`` most likely labels with their probabilities.

        One image (as for ``preprocess``) -> [Prediction(label, probability, class_index), ...], most likely
        first (each unpacks as ``label, probability``).
        A list of images -> one such list per image, computed in batches of ``batch_size``. An image that
        cannot be read raises its tinynet.ImageError; with ``errors="return"`` that ImageError takes the
        image's place in the list instead, and the other images are classified.
        """
        if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
            raise TinynetError(f"top must be a whole number of at least 1, got {top!r}")
        if errors not in ("raise", "return"):
            raise TinynetError(f"errors must be 'raise' or 'return', got {errors!r}")
        if isinstance(images, (list, tuple)):
            names, spec = labels_for(self), preprocessing.for_model(self)
            results = []
            for start in range(0, len(images), batch_size):
                chunk = images[start:start + batch_size]
                if errors == "raise":
                    x = preprocessing.batch(chunk, spec)  # (n, H, W, 3)
                    results.extend(top_labels(self.probabilities(x), names, top))
                else:
                    results.extend(self._classify_or_record(chunk, spec, names, top))
            return results
        return top_labels(self.probabilities(self.preprocess(images)), labels_for(self), top)[0]

    def _classify_or_record(self, images, spec, names, top):
        """classify's ``errors="return"``: one result list, or the image's ImageError, per image."""
        arrays, failures = [], []
        for image in images:
            try:
                arrays.append(preprocessing.to_array(image, spec))
                failures.append(None)
            except ImageError as e:
                failures.append(e)
        predictions = iter(top_labels(self.probabilities(np.stack(arrays)), names, top) if arrays else ())
        return [next(predictions) if failure is None else failure for failure in failures]

    def detect(self, images, score_threshold=None, top=None):
        """Boxes: only detection models have them (tinynet.detection.model.DetectionModel)."""
        raise TinynetError(f"this is a {self.task} model ({self.arch}): it has no boxes to detect; use classify")

    def native_tensors(self):
        """The tensors tinynet's format (tinynet.io.save) stores for this model: its runtime weights."""
        return self.weights

    def _head_weight_shapes(self, layers):
        """{name: shape} of weights beyond the backbone layers' (a head's); a classifier has none."""
        return {}

    def features(self, image, batch_size=CLASSIFY_BATCH):
        """The pooled embedding before the classifier for one image (as for ``preprocess``): (C,) float32.
        A list of images gives (N, C), computed in batches of ``batch_size``."""
        if isinstance(image, (list, tuple)):
            return np.concatenate([self.embed(self.preprocess(list(image[start:start + batch_size])))
                                   for start in range(0, len(image), batch_size)])
        return self.embed(self.preprocess(image))[0]

    def _run(self, x, n_layers, taps=()):
        """The last of the first ``n_layers`` layers' output for ``x``; with ``taps``, {tap: output} instead."""
        x = self._check_input(x)
        threads = resolve_threads(self.threads)
        grid = self.meta.get("activation_grid") if self.quantized_activations else None
        key = (x.shape, n_layers, threads, grid is not None, taps)
        fused = fusion_ready()
        with self._pooled_plan(key, lambda: Plan(self.layers[:n_layers], self.weights, self.padding, x.shape, threads,
                                                 grid, FUSE_MIN_FLOATS if fused else NO_FUSION,
                                                 packed_weights=self._packed_weights, taps=taps,
                                                 fuse_squeeze_excite=fused)) as plan:
            numba.set_num_threads(threads)  # per calling thread in Numba, so set on every call (~2 us)
            with compile_notice(plan):
                output = plan.run(x)
                return {name: plan.tapped(name).copy() for name in taps} if taps else output.copy()

    @contextmanager
    def _pooled_plan(self, key, make):
        """A plan for ``key`` that no other thread is using: an idle one, or ``make()``; idle again afterwards."""
        with self._lock:
            idle = self._idle_plans.setdefault(key, [])
            plan = idle.pop() if idle else None
        if plan is None:
            plan = make()
        try:
            yield plan
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
        if not np.issubdtype(x.dtype, np.floating):
            # Pixels 0..255 would run, and give a confident wrong class: the model wants them normalised.
            raise TinynetError(f"forward takes a preprocessed float32 batch, got {x.dtype} (raw pixels?): use "
                               f"model.preprocess(image) first, or model.classify(image), which accept uint8 arrays")
        if not np.isfinite(x).all():  # the kernels would not fail: their activation clamps turn NaN into finite logits
            bad = int(x.size - np.count_nonzero(np.isfinite(x)))
            raise TinynetError(f"input holds {bad} NaN or infinite value{'s' if bad > 1 else ''}")
        # Writeable, aligned, C-contiguous float32: the array type the kernels are compiled (and cached) for.
        return np.require(x, np.float32, ["C", "A", "W"])


def create(arch, width=1.0, num_classes=1000, seed=0, padding="symmetric", convention="torchvision"):
    """A model of ``arch`` with seeded random weights (He-normal convs, small biases): for benchmarks,
    counting and tests. Architecture names as torchvision spells them, plus the "_minimalistic" V3s.
    ``convention``: how ``width`` scales V3's channels, "torchvision" or "tf" (see tinynet.spec.layers_for_width)."""
    layers = layers_for_width(arch, width, num_classes, convention)
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
