"""Segmentation side by side: the DeepLab .tflite files against LiteRT, torchvision's LR-ASPP and DeepLabv3 (MobileNet
V3-Large, 520x520) against ONNX Runtime and PyTorch, same weights and the same input for every engine.

    python bench/segment.py [--cases ...] [--threads 1 2] [--rounds 5] [--runs 5] [--peer-python /work/fxenv/bin/python]

What is timed, per engine, is one image's network to its full-size output:
- DeepLab .tflite (513x513 input, the stored bytes of pets.jpg): LiteRT's ``invoke`` (its default resolver, XNNPACK;
  the graph ends in a 513x513 resize and ARG_MAX), tinynet's ``low_res_logits`` + ``mask_from_logits`` to 513x513
  (what ``segment`` runs on a 513x513 photo: the same resize and arg-max, in bands).
- torchvision models (520x520 seeded input): PyTorch's ``model(x)["out"]`` (eval, inference_mode), ONNX Runtime on
  that model exported with torch.onnx, tinynet's ``forward`` (logits at 520x520, NHWC). LR-ASPP uses the shared
  golden .pth; DeepLabv3 seeded torchvision weights (torch.manual_seed(0), saved once to a temporary .pth).
Before timing, every engine's mask (the arg-max of its output) is compared with tinynet's and the agreement shown.

Fairness as in bench/models.py: each engine and thread count is a worker process of its own (tinynet in this
interpreter, the peers in ``--peer-python``'s, which needs torch, torchvision, onnxruntime and ai-edge-litert), one
worker works at a time, and rounds alternate: each round visits the cases in a shuffled order and, for each, the
engines in a shuffled order, ``--runs`` timed calls per visit after a short idle. Reported: the median over all
rounds (p10-p90) and tinynet's median divided by each peer's (below 1: tinynet is faster).
"""
import argparse
import base64
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"
WEIGHTS = SHARED / "weights"
INPUTS = WEIGHTS / "expected" / "seg_inputs_513.npz"
PHOTO = "pets.jpg"
TV_SIZE = 520

# case -> (file or torchvision model name, peers)
CASES = {
    "deeplab_mnv2_quant": (WEIGHTS / "coral_test_data" / "deeplabv3_mnv2_pascal_quant.tflite", ("litert",)),
    "deeplab_mnv2_dm05_quant": (WEIGHTS / "coral_test_data" / "deeplabv3_mnv2_dm05_pascal_quant.tflite", ("litert",)),
    "deeplab_mnv2_dm05_float": (WEIGHTS / "valyouw_tflite_win_c" / "deeplabv3_mnv2_dm05_pascal.tflite", ("litert",)),
    "lraspp_mobilenet_v3_large": ("lraspp_mobilenet_v3_large", ("onnxruntime", "torch")),
    "deeplabv3_mobilenet_v3_large": ("deeplabv3_mobilenet_v3_large", ("onnxruntime", "torch")),
}
LRASPP_PTH = SHARED / "golden_dense" / "tv_lraspp_mobilenet_v3_large.pth"


# ---- engines (run inside a worker; the peers' workers never import tinynet) ------------------------------------

def tv_input():
    return np.random.default_rng(0).standard_normal((1, 3, TV_SIZE, TV_SIZE)).astype(np.float32)


def tflite_input(path):
    """The stored uint8 bytes, as the file's input type holds them (uint8, or float32 x / 127.5 - 1)."""
    q = np.load(INPUTS)[PHOTO]
    return q if "quant" in path.name else (q.astype(np.float32) / np.float32(127.5) - np.float32(1))


def torchvision_model(name, pth):
    import torch
    import torchvision
    build = getattr(torchvision.models.segmentation, name)
    model = build(weights=None, weights_backbone=None, num_classes=21, aux_loss=name.startswith("deeplab") or None)
    model.load_state_dict(torch.load(pth, map_location="cpu"))
    return model.eval()


def make(engine, case, threads, pth):
    """(call, mask): ``call()`` runs the network once; ``mask()`` gives its (H, W) class ids."""
    source, _ = CASES[case]
    if engine == "tinynet":
        import tinynet
        from tinynet.kernels import argmax_channels_nhwc
        from tinynet.tasks.segmentation import mask_from_logits
        if isinstance(source, Path):
            model = tinynet.load(source)
            q = np.load(INPUTS)[PHOTO].astype(np.float32)
            lo, hi = model.network.input_range
            x = np.float32(lo) + q * np.float32((hi - lo) / 255)
            grid = model.output_grid if model.quantized_activations else None

            def call():
                return mask_from_logits(model.low_res_logits(x)[0], *model.input_size, grid=grid,
                                        **dict(model.resize))
            model.threads = threads
            return call, call
        model = tinynet.load(pth)
        model.threads = threads
        x = np.ascontiguousarray(tv_input().transpose(0, 2, 3, 1))

        def mask():
            logits = model.forward(x)
            return argmax_channels_nhwc(logits, np.empty(logits.shape[:3], np.uint8))[0]
        return lambda: model.forward(x), mask
    if engine == "litert":
        from ai_edge_litert.interpreter import Interpreter
        interpreter = Interpreter(model_path=str(source), num_threads=threads)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tflite_input(source))
        out = interpreter.get_output_details()[0]["index"]

        def mask():
            interpreter.invoke()
            return interpreter.get_tensor(out)[0]
        return interpreter.invoke, mask
    x = tv_input()
    if engine == "torch":
        import torch
        torch.set_num_threads(threads)
        model, tx = torchvision_model(source, pth), torch.from_numpy(x)

        def call():
            with torch.inference_mode():
                return model(tx)["out"]
        return call, lambda: call()[0].argmax(0).numpy()
    if engine == "onnxruntime":
        import onnxruntime
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = onnxruntime.InferenceSession(str(pth.with_suffix(".onnx")), options,
                                               providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x}
        return lambda: session.run(None, feed), lambda: session.run(None, feed)[0][0].argmax(0)
    raise ValueError(f"unknown engine {engine!r}")


def export(name, pth):
    """Write seeded torchvision weights to ``pth`` (unless it is the shared LR-ASPP file) and ``pth``.onnx."""
    import torch
    torch.manual_seed(0)
    if name != "lraspp_mobilenet_v3_large":
        import torchvision
        build = getattr(torchvision.models.segmentation, name)
        torch.save(build(weights=None, weights_backbone=None, num_classes=21, aux_loss=True).state_dict(), pth)
    model = torchvision_model(name, pth)

    class Out(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x)["out"]
    torch.onnx.export(Out().eval(), (torch.zeros(1, 3, TV_SIZE, TV_SIZE),), str(pth.with_suffix(".onnx")),
                      input_names=["x"], dynamo=False)


def worker(engine, threads, pths):
    """Serve requests on stdin, one JSON line each: {"case", "runs"} -> {"times"}, {"case", "mask": true} -> mask."""
    runners = {}
    for line in sys.stdin:
        request = json.loads(line)
        case = request["case"]
        if case not in runners:
            runners[case] = make(engine, case, threads, Path(pths[case]) if pths.get(case) else None)
            for _ in range(3):  # compilation, allocation, thread start
                runners[case][0]()
        call, mask = runners[case]
        if request.get("mask"):
            m = np.ascontiguousarray(mask(), np.uint8)
            reply = {"mask": base64.b64encode(m.tobytes()).decode(), "shape": m.shape}
        else:
            times = []
            for _ in range(request["runs"]):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            reply = {"times": times}
        print(json.dumps(reply), flush=True)


# ---- the driver --------------------------------------------------------------------------------------------------

class Worker:
    def __init__(self, python, engine, threads, pths):
        self.engine = engine
        self.process = subprocess.Popen([python, __file__, "--worker", engine, "--threads", str(threads),
                                         "--pths", json.dumps(pths)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)

    def ask(self, **request):
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.engine} worker died (its error is above)")
        return json.loads(line)

    def mask(self, case):
        reply = self.ask(case=case, mask=True)
        return np.frombuffer(base64.b64decode(reply["mask"]), np.uint8).reshape(reply["shape"])

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def measure(cases, threads, rounds, runs, gap, peer_python, pths):
    """({(case, engine): [seconds, ...]}, {(case, engine): mask agreement with tinynet})."""
    engines = ["tinynet"] + sorted({p for case in cases for p in CASES[case][1]})
    workers = {e: Worker(sys.executable if e == "tinynet" else peer_python, e, threads, pths) for e in engines}
    try:
        agreement = {}
        for case in cases:
            reference = workers["tinynet"].mask(case)
            for peer in CASES[case][1]:
                agreement[(case, peer)] = float((workers[peer].mask(case) == reference).mean())
        times = {}
        for _ in range(rounds):
            order = list(cases)
            random.shuffle(order)
            for case in order:
                visit = ["tinynet", *CASES[case][1]]
                random.shuffle(visit)
                for engine in visit:
                    time.sleep(gap)
                    times.setdefault((case, engine), []).extend(workers[engine].ask(case=case, runs=runs)["times"])
        return times, agreement
    finally:
        for w in workers.values():
            w.close()


def report(times, agreement, cases, threads):
    lines = ["| case | threads | tinynet ms | peer | peer ms | tinynet/peer | masks agree |", "|" + "---|" * 7]
    for case in cases:
        ours = np.array(times[(case, "tinynet")]) * 1e3
        for peer in CASES[case][1]:
            theirs = np.array(times[(case, peer)]) * 1e3
            cells = [case, str(threads)]
            for t in (ours, theirs):
                p10, p90 = np.percentile(t, [10, 90])
                cells.append(f"{np.median(t):.1f} ({p10:.1f}-{p90:.1f})")
            cells.insert(3, peer)
            cells += [f"**{np.median(ours) / np.median(theirs):.2f}**", f"{100 * agreement[(case, peer)]:.2f}%"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--rounds", type=int, default=5, help="visits per (case, engine)")
    parser.add_argument("--runs", type=int, default=5, help="timed calls per visit")
    parser.add_argument("--gap", type=float, default=0.2, help="seconds of idle before each visit")
    parser.add_argument("--peer-python", default="/work/fxenv/bin/python",
                        help="an interpreter with torch, torchvision, onnxruntime and ai-edge-litert")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--pths", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.threads[0], json.loads(args.pths))
    print(f"# {' '.join(sys.argv)}")
    with tempfile.TemporaryDirectory() as work:
        pths = {}
        for case in args.cases:
            if isinstance(CASES[case][0], str):
                pth = LRASPP_PTH if case == "lraspp_mobilenet_v3_large" else Path(work) / f"{case}.pth"
                onnx_pth = Path(work) / pth.name  # the .onnx goes beside a .pth in the work folder
                if pth == LRASPP_PTH:
                    onnx_pth.symlink_to(pth)
                subprocess.run([args.peer_python, __file__, "--export", case, str(onnx_pth)], check=True)
                pths[case] = str(onnx_pth)
        for threads in args.threads:
            times, agreement = measure(args.cases, threads, args.rounds, args.runs, args.gap, args.peer_python, pths)
            print(report(times, agreement, args.cases, threads), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--export":
        export(CASES[sys.argv[2]][0], Path(sys.argv[3]))
    else:
        main()
