"""The TF Object Detection API SSD .tflite side by side: tinynet against LiteRT on the same file (whole network, the
TFLite_Detection_PostProcess included in both), one 300x300 photo.

    python bench/detect_tflite.py [--tflite FILE] [--peer-python /work/fxenv/bin/python] [--threads 1 2]

Each engine runs in a worker process of its own, and the engines alternate over ``--rounds`` rounds in shuffled
order (bench/timing.py, as bench/models.py and bench/detect.py do). tinynet runs in this interpreter's environment;
LiteRT (ai-edge-litert, its default resolver: XNNPACK) in ``--peer-python``'s. Both get the same uint8 image bytes
(tinynet as its preprocess feeds them, (q - 128) / 128). No output check before timing: LiteRT's own kernel sets
differ by up to 6/256 in score, and tests/test_tflite_ssd.py holds tinynet to LiteRT's detections. The table:
median ms (p10-p90) over all rounds, and tinynet's median over LiteRT's.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import timing  # noqa: E402  (bench/, on the path just above)

SHARED = HERE.parents[1] / "shared"
DEFAULT_TFLITE = SHARED / "weights" / "edje_tflite_od" / "ssd_mobilenet_v1.tflite"
DEFAULT_PHOTO = SHARED / "weights" / "expected" / "ssd_mobilenet_v1" / "pets.jpg.npz"
ENGINES = ["tinynet", "litert"]


def make_runner(engine, threads, tflite, photo):
    """The worker's ``make`` (bench/timing.serve): -> (run, None); ``run`` is the network and its postprocess."""
    image = np.load(photo)["input"]  # (1, 300, 300, 3) uint8, as LiteRT is fed
    if engine == "tinynet":
        import tinynet

        model = tinynet.load(tflite)
        model.threads = threads
        x = (image.astype(np.float32) - 128) / 128

        def run():
            out = model.forward(x)
            return model.postprocess(out["box_encodings"][0], out["class_scores"][0])

        return lambda case: (run, None)
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite), num_threads=threads)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]

    def run():
        interpreter.set_tensor(index, image)
        interpreter.invoke()

    return lambda case: (run, None)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tflite", type=Path, default=DEFAULT_TFLITE, help="a TF-OD SSD .tflite")
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help="an npz whose 'input' is the uint8 image")
    parser.add_argument("--peer-python", default="/work/fxenv/bin/python", help="an interpreter with ai-edge-litert")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--rounds", type=int, default=7, help="visits per engine and thread count")
    parser.add_argument("--runs", type=int, default=10, help="timed calls per visit")
    parser.add_argument("--gap", type=float, default=0.1, help="seconds of idle before each visit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return timing.serve(make_runner(args.worker, args.threads[0], args.tflite, args.photo))
    print(f"# {' '.join(sys.argv)}")
    extra = ["--tflite", str(args.tflite), "--photo", str(args.photo)]
    python = {"tinynet": None, "litert": args.peer_python}
    commands = {e: (lambda threads, e=e: timing.worker_command(__file__, e, threads, python[e], extra)) for e in ENGINES}
    timing.run_all(commands, [{"model": "ssd_mobilenet_v1"}], args.threads, args.rounds, lambda case: args.runs,
                   args.gap, lambda case, threads: {"model": "SSD MobileNet V1 uint8", "threads": str(threads)})


if __name__ == "__main__":
    main()
