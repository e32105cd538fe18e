"""One callable per engine: ``make(engine, model, batch, threads)`` -> (run(), logits()), inputs bound.

Each engine gets the same seeded input batch (NHWC for tinynet and LiteRT, NCHW for ONNX Runtime and
PyTorch) and the same weights, exported from the tinynet model by bench/exporters.py. ``available()``
names the engines whose Python packages are installed; the others are skipped with a note.
"""
import importlib.util

import numpy as np

import exporters

PACKAGES = {"tinynet": "numba", "onnxruntime": "onnxruntime", "litert": "ai_edge_litert", "torch": "torch"}


def available():
    """{engine: None if usable, else why not}."""
    return {e: None if importlib.util.find_spec(p) else f"{p} is not installed (pip install -e .[bench])"
            for e, p in PACKAGES.items()}


def input_batch(batch):
    """The benchmark input: (batch, 224, 224, 3) float32, seeded."""
    return np.random.default_rng(0).standard_normal((batch, 224, 224, 3)).astype(np.float32)


def make(engine, model, batch, threads):
    x = input_batch(batch)
    if engine == "tinynet":
        import tinynet
        from tinynet.warmup import warmup

        # Every kernel compiled (or loaded) before anything is timed: with a cold cache (after an edit or a merge) the
        # first forward would plan without the fused expand + depthwise kernel for this process's life, and compile
        # it in a background process while the engines are timed (tinynet.warmup.fusion_ready).
        warmup()
        m = tinynet.Model(model.arch, model.layers, model.weights, model.padding, threads=threads)
        return lambda: m.forward(x), lambda: m.forward(x)
    if engine == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(exporters.to_onnx(model, batch), options, providers=["CPUExecutionProvider"])
        feed = {"input": np.ascontiguousarray(x.transpose(0, 3, 1, 2))}
        return lambda: session.run(None, feed), lambda: session.run(None, feed)[0]
    if engine == "litert":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_content=exporters.to_tflite(model, batch), num_threads=threads)
        interpreter.allocate_tensors()
        inp, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
        interpreter.set_tensor(inp, x)

        def logits():
            interpreter.invoke()
            return interpreter.get_tensor(out)

        return interpreter.invoke, logits
    if engine == "torch":
        import torch

        torch.set_num_threads(threads)
        forward = exporters.to_torch(model)
        xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=torch.channels_last)

        def run():
            with torch.inference_mode():
                return forward(xt)

        return run, lambda: run().numpy()
    raise ValueError(f"unknown engine {engine!r}")
