"""Quantized .tflite classifiers side by side: tinynet's integer graph against LiteRT on the same file, and against
tinynet's own float path on it (the file dequantized), batch 1.

    python bench/int8.py [--files A.tflite ...] [--threads 1 2] [--rounds 7] [--split FILE]

Each engine runs in a worker process of its own and the engines alternate over rounds (bench/timing.py):
  tinynet      tinynet.load(file): precision "int8", profile "litert" (bit for bit LiteRT's outputs)
  litert       ai-edge-litert's Interpreter, default resolver (XNNPACK); without it for a file the delegate refuses
  tinynet[float] tinynet.load(file, precision="float"): dequantized weights on tinynet's float32 kernels
All get the same photo: the uint8 bytes the file takes (float inputs: the values its graph takes). The table gives
medians (p10-p90) and tinynet's median over each. ``--split FILE`` prints where tinynet's integer forward spends
its time, per operator kind (one process, 50 forwards).
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import timing  # noqa: E402  (bench/, on the path just above)

SHARED = HERE.parents[1] / "shared"
WEIGHTS = SHARED / "weights"
FILES = ["coral_test_data/mobilenet_v1_0.25_128_quant.tflite", "coral_test_data/mobilenet_v1_0.5_160_quant.tflite",
         "coral_test_data/mobilenet_v1_0.75_192_quant.tflite", "atu_model_zoo/mobilenet_v1_0.75_224_quant.tflite",
         "coral_test_data/mobilenet_v2_1.0_224_quant.tflite", "coral_test_data/tf2_mobilenet_v2_1.0_224_ptq.tflite",
         "atu_model_zoo/mobilenet_v2_1_0_quant.tflite", "atu_model_zoo/v3-small_224_1.0_uint8.tflite",
         "atu_model_zoo/Mobilenet_v3_small_quant.tflite",
         "tqminlo_mobilenetv3_by_c/v3-large-minimalistic_224_1.0_uint8.tflite"]
PHOTO = SHARED / "images" / "parrot.jpg"
ENGINES = ["tinynet", "litert", "tinynet[float]"]


def photo_input(model):
    return model.file_input(model.preprocess(PHOTO))


def make_runner(engine, threads):
    """The worker's ``make`` (bench/timing.serve): case {"file"} -> (run, output)."""
    import tinynet

    def make(case):
        path = WEIGHTS / case["file"]
        int8 = tinynet.load(path)
        if engine == "tinynet":
            int8.threads = threads
            x = photo_input(int8)
            return (lambda: int8.forward(x)), (lambda: int8.forward(x))
        if engine == "tinynet[float]":
            model = tinynet.load(path, precision="float")
            model.threads = threads
            x = model.preprocess(PHOTO)
            return (lambda: model.forward(x)), (lambda: model.forward(x))
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.AUTO if int8.program.kernels == "xnnpack" else \
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        interpreter = Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], photo_input(int8))
        out = interpreter.get_output_details()[0]["index"]
        return interpreter.invoke, lambda: interpreter.get_tensor(out)

    return make


def split(file, threads, forwards=50):
    """Milliseconds per forward of each operator kind of tinynet's integer graph, sorted."""
    import numba
    import tinynet
    from tinynet.quantized.ops import Quant, to_stored

    model = tinynet.load(WEIGHTS / file)
    numba.set_num_threads(threads)
    x = photo_input(model)
    program = model.program
    workspace = {}
    steps = [(op.op.name, op.bind(workspace)) for op in program.operators]  # as Program.run calls them
    quant = Quant.of(program.input_tensors[0])
    stored = to_stored(x, quant.signed) if quant else x  # as Program.run stores it (int8 + 128)
    totals = {}
    for i in range(forwards + 3):
        values = {program.input_tensors[0].index: stored}
        for name, step in steps:
            start = time.perf_counter()
            step(values)
            if i >= 3:  # the first forwards compile
                totals[name] = totals.get(name, 0.0) + time.perf_counter() - start
    whole = sum(totals.values())
    print(f"| {file} ({threads} thread{'s' if threads > 1 else ''}) | ms per forward | share |\n|---|---|---|")
    for name, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"| {name} | {1e3 * seconds / forwards:.3f} | {seconds / whole:.0%} |")
    print(f"| all | {1e3 * whole / forwards:.3f} | |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", nargs="+", default=FILES, help="quantized .tflite files under <shared>/weights")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--rounds", type=int, default=7, help="visits per file, engine and thread count")
    parser.add_argument("--runs", type=int, default=20, help="timed forwards per visit")
    parser.add_argument("--gap", type=float, default=0.1, help="seconds of idle before each visit")
    parser.add_argument("--engines", nargs="+", default=ENGINES, choices=ENGINES)
    parser.add_argument("--split", metavar="FILE", help="only print the per-operator split of FILE")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return timing.serve(make_runner(args.worker, args.threads[0]))
    print(f"# {' '.join(sys.argv)}")
    if args.split:
        for threads in args.threads:
            split(args.split, threads)
        return
    if "tinynet" not in args.engines:
        raise SystemExit("--engines must include tinynet (the tables give tinynet over each of the others)")
    commands = {e: (lambda threads, e=e: timing.worker_command(__file__, e, threads)) for e in args.engines}
    cases = [{"file": f} for f in args.files]
    timing.run_all(commands, cases, args.threads, args.rounds, lambda case: args.runs, args.gap,
                   lambda case, threads: {"file": Path(case["file"]).name, "threads": str(threads)})


if __name__ == "__main__":
    main()
