"""Pointwise (1x1) layers of MobileNet V1/V2/V3 at 224x224: tinynet's GEMM against numpy's OpenBLAS, 1 thread.

    python bench/pointwise.py

Every distinct (pixels, Cin, Cout) of the four models, with the register tile tinynet.plan picks for it
(rows x output channels of kernels/gemm_tile.py), checked against kernels.reference on 64 rows first. tinynet's time includes its fused bias + ReLU6; OpenBLAS's
is the bare matmul. The two are timed alternately in one process with 1 thread each (OpenBLAS limited
through threadpoolctl, or OPENBLAS_NUM_THREADS=1 set before numpy loads).
"""
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numba  # noqa: E402
import numpy as np  # noqa: E402

from tinynet import kernels  # noqa: E402,F401  (threading layer first)
import tinynet  # noqa: E402
from tinynet.kernels import reference as ref  # noqa: E402
from tinynet.kernels.padding import conv_output_size  # noqa: E402
from tinynet.kernels.gemm_tile import LANES, TILE_ROWS  # noqa: E402
from tinynet.plan import aligned_empty, pointwise_call  # noqa: E402

RELU6 = 2


def shapes():
    """{(pixels, cin, cout): [model, ...]} of every pointwise layer at 224x224, batch 1."""
    found = {}
    for arch in ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"):
        size = 224
        for layer in tinynet.create(arch).layers:
            if layer.op in ("conv", "dw"):
                size = conv_output_size(size, layer.k, layer.stride, "symmetric")[0]
            if layer.op == "pw":
                found.setdefault((size * size, layer.cin, layer.cout), []).append(arch.replace("mobilenet_", ""))
    return found


def main():
    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    print(f"# {' '.join(sys.argv)}")
    print("| pixels x Cin x Cout | models | tile | tinynet us | GFLOP/s | OpenBLAS us | GFLOP/s | tinynet / OpenBLAS time |")
    print("|---|---|---|---|---|---|---|---|")
    for (p, k, m), models in sorted(shapes().items(), key=lambda item: -item[0][0] * item[0][1] * item[0][2]):
        a = aligned_empty(p * k).reshape(p, k)
        a[...] = rng.standard_normal((p, k))
        w = (rng.standard_normal((k, m)) / np.sqrt(k)).astype(np.float32)
        b = rng.standard_normal(m).astype(np.float32)
        out, blas_out = aligned_empty(p * m).reshape(p, m), np.empty((p, m), np.float32)
        kernel, args = pointwise_call(a, *kernels.pack_weights(w, b), out, RELU6, kernels.gemm.NO_RESIDUAL, 1)
        kernel(*args)
        expected = ref.gemm_bias_act_ref(a[:64], w, b, RELU6)
        assert np.abs(out[:64] - expected).max() <= 1e-5 * (1 + k * np.abs(a).max() * np.abs(w).max() + np.abs(b).max())
        ours, blas = [], []
        for _ in range(15):
            for runner, times in ((lambda: kernel(*args), ours), (lambda: np.matmul(a, w, out=blas_out), blas)):
                runner()
                start = time.perf_counter()
                runner()
                times.append(time.perf_counter() - start)
        t, tb = np.median(ours), np.median(blas)
        flops = 2 * p * k * m
        nr = args[2].shape[1]
        path = f"{TILE_ROWS[nr // LANES]}x{nr}"
        print(f"| {p} x {k} x {m} | {', '.join(sorted(set(models)))} | {path} | {t * 1e6:.0f} | {flops / t / 1e9:.0f} | "
              f"{tb * 1e6:.0f} | {flops / tb / 1e9:.0f} | {t / tb:.2f} |")


if __name__ == "__main__":
    main()
