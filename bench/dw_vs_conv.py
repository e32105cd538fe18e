"""Kernel lab: depthwise vs standard vs pointwise convolution on MobileNet's depthwise shapes, with a roofline.

    python bench/dw_vs_conv.py                     # tinynet 1 and 2 threads, peers, roofline, PNG
    python bench/dw_vs_conv.py --threads 1 --no-peers

For each shape of bench/shapes/mobilenet_dw.txt (XNNPACK's ``H W KH KW PH PW S D G`` columns) it
first checks tinynet's kernels against kernels.reference (float64) on a crop of the shape (same
channels and stride, at most 12x12 pixels), then times:
  dw    tinynet's depthwise 3x3 kernel             C -> C
  conv  tinynet's standard 3x3 conv, same channels  C -> C (the GEMM micro-kernel on the input rows)
  pw    tinynet's 1x1 conv on the depthwise output   C -> C (the other half of a separable block)
and prints time, GFLOP/s (2 x MACs), bytes moved, GB/s, and separable (dw + pw) against standard.

Bytes moved, the model: every input and weight element read once, every output written once
(float32). Real traffic is higher when a working set leaves the cache; this is the compulsory
traffic, which is what the roofline's arithmetic intensity uses.

Roofline: this machine's peaks are measured in their own process: sgemm GFLOP/s (numpy matmul,
1 thread), DRAM bandwidth (copying 256 MB arrays) and L2-resident bandwidth (copying 512 KB
arrays). A kernel with arithmetic intensity I (FLOP per byte) can reach at most
min(peak GFLOP/s, I x bandwidth). Depthwise conv does 18 FLOP per 8 bytes of input and output:
~2 FLOP/byte, so it is bound by bandwidth, while the pointwise and standard convs are bound by FLOPs.

Peers (separate processes, optional): ONNX Runtime's depthwise Conv node (group=C, with Clip, which
ORT fuses into it), timed by ORT's profiler so that the layout conversions ORT wraps around a
one-node NCHW graph do not count against it; and PyTorch's channels_last conv2d(groups=C) + relu6,
timed as called. Each engine and thread count runs in a process of its own. Timing: median of ``--repeat`` calls after warm-up calls in each process; ``--rounds`` processes
per engine and thread count, in shuffled order, and the median over them.
"""
import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

SHAPES = HERE / "shapes" / "mobilenet_dw.txt"
CHECK_SIZE = 12  # pixels per side of the crop checked against the float64 reference
RELU6 = 2


def read_shapes(path=SHAPES):
    """[(H, W, K, pad, stride, C)] from an XNNPACK-style table (square kernels, dilation 1)."""
    rows = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            h, w, kh, kw, ph, pw, s, d, g = map(int, line.split())
            assert kh == kw and ph == pw and d == 1, line
            rows.append((h, w, kh, ph, s, g))
    return rows


def out_size(n, k, pad, stride):
    return (n + 2 * pad - k) // stride + 1


WARM_SECONDS = 0.05  # busy calls before timing: right after a pause, waking a thread pool costs milliseconds here


def warm_up(fn, warm=3):
    """Call ``fn`` at least ``warm`` times and for at least WARM_SECONDS (kernels/threading.py says why)."""
    start = time.perf_counter()
    calls = 0
    while calls < warm or time.perf_counter() - start < WARM_SECONDS:
        fn()
        calls += 1


def median_time(fn, repeat, warm=3):
    warm_up(fn, warm)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


# ------------------------------------------------------------------ workers (one process each)
def tinynet_cases(shape, rng, threads):
    """{name: (call, check)} for one shape: ``check()`` compares the kernel with kernels.reference on a crop."""
    from tinynet import kernels
    from tinynet.kernels import reference as ref
    from tinynet.kernels.gemm import NO_RESIDUAL
    from tinynet.plan import aligned_empty, aligned_zeros, depthwise_groups, gemm_row_tile

    h, w, k, pad, s, c = shape
    ho, wo = out_size(h, k, pad, s), out_size(w, k, pad, s)

    def array(*dims, scale=1.0):
        a = aligned_empty(int(np.prod(dims))).reshape(dims)
        a[...] = rng.standard_normal(dims) * scale
        return a

    x, wdw, wconv, wpw, b = array(1, h, w, c), array(k, k, c), array(k, k, c, c, scale=0.05), array(c, c, scale=0.1), array(c)
    conv_packed, pw_packed = kernels.pack_weights(wconv.reshape(-1, c), b), kernels.pack_weights(wpw, b)
    dw_out, conv_out, pw_out = array(1, ho, wo, c), array(1, ho, wo, c), array(ho * wo, c)
    row_tile = gemm_row_tile(ho * wo, c, c, pw_packed[1].shape[1], threads)  # the plan's choices
    groups = depthwise_groups(ho, c, threads, k * w * c)
    zeros = aligned_zeros(w * c)

    def bound(a, wt, taps):  # float32 accumulation error allowed, as in tests/test_kernels.py
        return 1e-5 * (1 + taps * np.abs(a).max() * np.abs(wt).max() + np.abs(b).max())

    def check_dw():
        xc = np.ascontiguousarray(x[:, :CHECK_SIZE, :CHECK_SIZE])
        hc, wc = out_size(xc.shape[1], k, pad, s), out_size(xc.shape[2], k, pad, s)
        got = np.empty((1, hc, wc, c), np.float32)
        kernels.dwconv2d_nhwc_f32(xc, wdw, b, got, s, 1, pad, pad, RELU6, groups, zeros)
        return got, ref.dwconv2d_nhwc_ref(xc, wdw, b, (hc, wc), s, pad, pad, RELU6), bound(xc, wdw, k * k)

    def check_conv():
        xc = np.ascontiguousarray(x[:, :CHECK_SIZE, :CHECK_SIZE])
        hc, wc = out_size(xc.shape[1], k, pad, s), out_size(xc.shape[2], k, pad, s)
        got = np.empty((1, hc, wc, c), np.float32)
        kernels.conv2d_nhwc_f32(xc, *conv_packed, got, k, s, pad, pad, RELU6)
        return got, ref.conv2d_nhwc_ref(xc, wconv, b, (hc, wc), s, pad, pad, RELU6), bound(xc, wconv, k * k * c)

    def check_pw():
        a = dw_out.reshape(-1, c)[:CHECK_SIZE * CHECK_SIZE]
        got = np.empty((a.shape[0], c), np.float32)
        kernels.gemm_bias_act_f32(a, *pw_packed, got, RELU6, NO_RESIDUAL, gemm_row_tile(a.shape[0], c, c, pw_packed[1].shape[1], threads))
        return got, ref.gemm_bias_act_ref(a, wpw, b, RELU6), bound(a, wpw, c)

    return {
        "dw": (lambda: kernels.dwconv2d_nhwc_f32(x, wdw, b, dw_out, s, 1, pad, pad, RELU6, groups, zeros), check_dw),
        "conv": (lambda: kernels.conv2d_nhwc_f32(x, *conv_packed, conv_out, k, s, pad, pad, RELU6), check_conv),
        "pw": (lambda: kernels.gemm_bias_act_f32(dw_out.reshape(-1, c), *pw_packed, pw_out, RELU6, NO_RESIDUAL, row_tile),
               check_pw),
    }


def peer_case(engine, shape, threads, rng):
    """The peer's depthwise conv (with its ReLU6) on this shape: a function of ``repeat`` giving the median seconds."""
    h, w, k, pad, s, c = shape
    x = rng.standard_normal((1, c, h, w)).astype(np.float32)
    wdw = rng.standard_normal((c, 1, k, k)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    if engine == "onnxruntime":
        return lambda repeat: onnxruntime_conv_time(x, wdw, b, k, s, pad, threads, repeat)
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    xt = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
    wt = torch.from_numpy(wdw).contiguous(memory_format=torch.channels_last)
    bt = torch.from_numpy(b)

    def run():
        with torch.inference_mode():
            return F.relu6(F.conv2d(xt, wt, bt, s, pad, 1, c))

    return lambda repeat: median_time(run, repeat)


def onnxruntime_conv_time(x, wdw, b, k, s, pad, threads, repeat):
    """Median time of ONNX Runtime's depthwise Conv kernel (Clip fused into it), from ORT's own profiler.

    A one-node graph in NCHW gets layout conversions to and from ORT's blocked NCHWc format around the
    conv (ReorderInput/ReorderOutput, as long as the conv itself on 112x112 shapes) and the session's
    call overhead; in a whole model those are paid once or not at all. Timing session.run would charge
    them to the peer, so only the conv node's kernel time counts here.
    """
    import os
    import tempfile

    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    c = x.shape[1]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], group=c, kernel_shape=[k, k], strides=[s, s], pads=[pad] * 4),
             helper.make_node("Clip", ["c", "lo", "hi"], ["y"])]
    inits = [numpy_helper.from_array(a, n) for a, n in ((wdw, "w"), (b, "b"), (np.float32(0), "lo"), (np.float32(6), "hi"))]
    graph = helper.make_graph(nodes, "dw", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "dw")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    warm_up(lambda: session.run(None, {"x": x}))
    for _ in range(repeat):
        session.run(None, {"x": x})
    profile = session.end_profiling()
    with open(profile) as f:
        events = json.load(f)
    os.remove(profile)
    times = [e["dur"] * 1e-6 for e in events
             if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["args"].get("op_name") == "Conv"]
    return float(np.median(times[-repeat:]))


def worker(engine, threads, repeat):
    """Print {"shape index": {"case": seconds}} as JSON: tinynet's three kernels, or a peer's depthwise conv."""
    rng = np.random.default_rng(0)
    shapes = read_shapes()
    results = {}
    if engine == "tinynet":
        import numba

        from tinynet import kernels  # noqa: F401  (first: it picks the threading layer and wait policy before Numba loads them)

        numba.set_num_threads(threads)
        cases = [tinynet_cases(shape, rng, threads) for shape in shapes]
        for case in cases:  # check everything before timing anything
            for name, (_, check) in case.items():
                got, expected, tolerance = check()
                err = np.abs(got - expected).max()
                if not err <= tolerance:
                    raise SystemExit(f"{name} kernel differs from kernels.reference by {err:.2g} (allowed {tolerance:.2g})")
        for i, case in enumerate(cases):
            results[i] = {name: median_time(call, repeat) for name, (call, _) in case.items()}
    else:
        timers = [peer_case(engine, shape, threads, rng) for shape in shapes]
        for i, timer in enumerate(timers):
            results[i] = {"dw": timer(repeat)}
    print(json.dumps(results))


def peaks_worker():
    """Print this machine's peaks as JSON: sgemm GFLOP/s (1 thread), DRAM and L2 copy GB/s."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # OPENBLAS_NUM_THREADS=1 is set by the parent for this process anyway
        from contextlib import nullcontext as threadpool_limits
    n = 1024
    a, b = np.ones((n, n), np.float32), np.ones((n, n), np.float32)
    c = np.empty((n, n), np.float32)
    with threadpool_limits(1):
        t = median_time(lambda: np.matmul(a, b, out=c), 9)
    big_src, big_dst = np.ones(64 << 20, np.float32), np.empty(64 << 20, np.float32)  # 256 MB each
    t_dram = median_time(lambda: np.copyto(big_dst, big_src), 5, warm=1)
    small_src, small_dst = np.ones(128 << 10, np.float32), np.empty(128 << 10, np.float32)  # 512 KB each

    def copies():
        for _ in range(100):
            np.copyto(small_dst, small_src)

    t_l2 = median_time(copies, 21) / 100
    print(json.dumps({"sgemm_gflops": 2 * n ** 3 / t / 1e9, "dram_gbs": 2 * big_src.nbytes / t_dram / 1e9,
                      "l2_gbs": 2 * small_src.nbytes / t_l2 / 1e9}))


# ------------------------------------------------------------------ the report
def run_worker(*args):
    import os

    # One OpenBLAS thread in every worker: the peaks are per core, and in the tinynet worker the float64 references
    # (numpy) would otherwise leave OpenBLAS threads spinning next to Numba's, which made the first 2-thread cases
    # timed after the checks 3-8x slower (numba-lab.md, section 4).
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"worker {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def flops_bytes(shape):
    """{case: (FLOPs, bytes)} for one shape, by the model in the module docstring."""
    h, w, k, pad, s, c = shape
    ho, wo = out_size(h, k, pad, s), out_size(w, k, pad, s)
    x, y = h * w * c, ho * wo * c
    return {"dw": (2 * k * k * c * ho * wo, 4 * (x + y + k * k * c + c)),
            "conv": (2 * k * k * c * c * ho * wo, 4 * (x + y + k * k * c * c + c)),
            "pw": (2 * c * c * ho * wo, 4 * (2 * y + c * c + c))}


def label(shape):
    h, w, k, pad, s, c = shape
    return f"{h}x{w}x{c} s{s}"


def report(shapes, measured, peaks, peers):
    print(f"peaks: sgemm {peaks['sgemm_gflops']:.0f} GFLOP/s (numpy matmul, 1 thread), "
          f"DRAM copy {peaks['dram_gbs']:.1f} GB/s, L2 copy {peaks['l2_gbs']:.0f} GB/s")
    for threads, results in measured.items():
        print(f"\n## tinynet, {threads} thread(s)\n")
        print("| shape | case | us | GFLOP/s | MB moved | GB/s | FLOP/byte | roofline GFLOP/s (L2 / DRAM) |")
        print("|---|---|---|---|---|---|---|---|")
        for i, shape in enumerate(shapes):
            for case, (flops, nbytes) in flops_bytes(shape).items():
                t = results[str(i)][case]
                intensity = flops / nbytes
                roof = [min(peaks["sgemm_gflops"] * threads, intensity * peaks[bw]) for bw in ("l2_gbs", "dram_gbs")]
                print(f"| {label(shape)} | {case} | {t * 1e6:.1f} | {flops / t / 1e9:.1f} | {nbytes / 1e6:.2f} | "
                      f"{nbytes / t / 1e9:.1f} | {intensity:.1f} | {roof[0]:.0f} / {roof[1]:.0f} |")
        print(f"\n### separable (dw + pw) vs standard 3x3 conv, {threads} thread(s)\n")
        print("| shape | FLOPs standard / separable | time standard / separable |")
        print("|---|---|---|")
        for i, shape in enumerate(shapes):
            fb, r = flops_bytes(shape), results[str(i)]
            flop_ratio, time_ratio = fb["conv"][0] / (fb["dw"][0] + fb["pw"][0]), r["conv"] / (r["dw"] + r["pw"])
            print(f"| {label(shape)} | {flop_ratio:.1f} | {time_ratio:.1f} |")
    if peers:
        print("\n## depthwise: tinynet against the best peer (GFLOP/s; median time in us)\n")
        names = sorted({name for name, _ in peers})
        head = ["shape", "threads", "tinynet"] + names + ["tinynet / best peer (GFLOP/s)"]
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        for threads, results in measured.items():
            for i, shape in enumerate(shapes):
                flops = flops_bytes(shape)["dw"][0]
                ours = flops / results[str(i)]["dw"] / 1e9
                theirs = {n: flops / peers[(n, threads)][str(i)]["dw"] / 1e9 for n in names if (n, threads) in peers}
                cells = [f"{ours:.1f} ({results[str(i)]['dw'] * 1e6:.0f})"]
                cells += [f"{theirs[n]:.1f} ({peers[(n, threads)][str(i)]['dw'] * 1e6:.0f})" if n in theirs else "-"
                          for n in names]
                ratio = f"**{ours / max(theirs.values()):.2f}**" if theirs else "-"
                print(f"| {label(shape)} | {threads} | " + " | ".join(cells) + f" | {ratio} |")


def plot(shapes, measured, peaks, path):
    """The roofline PNG: measured points of every case under the compute and bandwidth ceilings."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed; no plot (pip install -e .[bench])")
        return
    fig, ax = plt.subplots(figsize=(8, 5.5))
    intensity = np.logspace(-1, 3, 200)
    threads = max(measured)
    peak = peaks["sgemm_gflops"] * threads
    for bw, style in (("l2_gbs", "--"), ("dram_gbs", ":")):
        ax.plot(intensity, np.minimum(peak, intensity * peaks[bw] * min(threads, 2)), "k" + style,
                label=f"roof: {peak:.0f} GFLOP/s, {bw.split('_')[0].upper()} {peaks[bw] * min(threads, 2):.0f} GB/s")
    for case, marker in (("dw", "o"), ("pw", "s"), ("conv", "^")):
        xs, ys = [], []
        for i, shape in enumerate(shapes):
            flops, nbytes = flops_bytes(shape)[case]
            xs.append(flops / nbytes)
            ys.append(flops / measured[threads][str(i)][case] / 1e9)
        ax.scatter(xs, ys, marker=marker, label=f"tinynet {case} ({threads} thread(s))")
    ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (FLOP / byte, compulsory traffic)",
           ylabel="GFLOP/s", title="MobileNet V1/V2 depthwise shapes: depthwise sits under the bandwidth roof")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"\nroofline plot: {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per case (median)")
    parser.add_argument("--rounds", type=int, default=3, help="processes per engine and thread count (median over them)")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--plot", default=str(HERE / "roofline.png"), help="PNG path ('' for none)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--peaks", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peaks:
        return peaks_worker()
    if args.worker:
        return worker(args.worker, args.threads[0], args.repeat)
    import importlib.util

    shapes = read_shapes()
    peaks = run_worker("--peaks")
    engines = ["tinynet"]
    if not args.no_peers:
        for name in ("onnxruntime", "torch"):
            if importlib.util.find_spec(name) is None:
                print(f"note: {name} is not installed; skipped (pip install -e .[bench])")
            else:
                engines.append(name)
    # Rounds of one process per (engine, threads), in a new shuffled order each round; each case's figure is the
    # median over rounds. A noisy spell on the shared machine then spoils one round of one engine, not its figure.
    rounds = {(e, t): [] for e in engines for t in args.threads}
    order = list(rounds)
    rng = random.Random(0)
    for r in range(args.rounds):
        rng.shuffle(order)
        for engine, t in order:
            print(f"round {r + 1}/{args.rounds}: {engine}, {t} thread(s)", file=sys.stderr, flush=True)
            rounds[engine, t].append(run_worker("--worker", engine, "--threads", str(t), "--repeat", str(args.repeat)))
    combined = {key: {i: {case: float(np.median([run[i][case] for run in runs])) for case in runs[0][i]}
                      for i in runs[0]} for key, runs in rounds.items()}
    measured = {t: combined["tinynet", t] for t in args.threads}
    peers = {key: value for key, value in combined.items() if key[0] != "tinynet"}
    print(f"# {' '.join(sys.argv)}")
    report(shapes, measured, peaks, peers)
    if args.plot:
        plot(shapes, measured, peaks, args.plot)


if __name__ == "__main__":
    main()
