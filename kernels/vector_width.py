"""Let LLVM use 512-bit vectors on AVX-512 CPUs whose tuning asks for 256-bit ones.

LLVM tunes Intel server cores (Skylake-X to Emerald Rapids) with ``prefer-256-bit``: its loop
vectoriser then emits ymm code even though zmm FMAs are available. On this project's machine
(Xeon, family 6 model 207) the k-blocked GEMM ran at 60-80 GFLOP/s with ymm and 100-140 with zmm
(bench/README.md, "What was tried"). Numba takes its target features from ``numba.config.CPU_FEATURES`` when the CPU
code generator is first created, i.e. at the first compilation in the process, so this module must
be imported before anything is compiled; ``kernels/__init__`` does that. Cached kernels are keyed
by the feature string, so this never loads code built for other settings.

An explicit NUMBA_CPU_FEATURES (or NUMBA_CPU_NAME) in the environment always wins.

The same compile target answers ``target_has``: which instructions the kernels may emit (VNNI, AMX).
"""
import os

import numba
from numba.core.codegen import get_host_cpu_features

PREFER_512 = "-prefer-256-bit"


def _preferred_features():
    """The host feature string, plus an override of the 256-bit preference when AVX-512F is present."""
    features = get_host_cpu_features()
    return f"{features},{PREFER_512}" if "+avx512f" in features.split(",") else None


if "NUMBA_CPU_FEATURES" not in os.environ and "NUMBA_CPU_NAME" not in os.environ:
    numba.config.CPU_FEATURES = _preferred_features()


def target_has(feature):
    """Whether the code Numba emits may use ``feature`` (an LLVM name such as "avx512vnni" or "amx-int8"): the
    target's feature string when one is set, else the host's. A kernel must not emit an instruction the target
    lacks, even on a branch that never runs: LLVM aborts the process on it ("Cannot select"). With a CPU name but
    no feature string the features are LLVM's defaults for that name, unknown here: False."""
    features = numba.config.CPU_FEATURES
    if features is None:
        if numba.config.CPU_NAME is not None:
            return False
        features = get_host_cpu_features()
    return f"+{feature}" in features.split(",")
