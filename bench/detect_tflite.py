"""The TF Object Detection API SSD .tflite side by side: tinynet against LiteRT on the same file (whole network, the
TFLite_Detection_PostProcess included in both), one 300x300 photo.

    python bench/detect_tflite.py [--tflite FILE] [--peer-python /work/fxenv/bin/python] [--runs N] [--threads 1 2]

Each engine and thread count runs in a process of its own (a new interpreter). tinynet runs in this interpreter's
environment; LiteRT (ai-edge-litert, its default resolver: XNNPACK) in ``--peer-python``'s. Both get the same
uint8 image bytes (tinynet as its preprocess feeds them, (q - 128) / 128). The table shows each engine's median and
best of ``--runs`` timed calls after ``--warmup`` calls. (bench/detect.py does the same for SSDLite320.)
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_TFLITE = SHARED / "weights" / "edje_tflite_od" / "ssd_mobilenet_v1.tflite"
DEFAULT_PHOTO = SHARED / "weights" / "expected" / "ssd_mobilenet_v1" / "pets.jpg.npz"

# Each engine's timing loop, run as ``python -c CODE TFLITE PHOTO_NPZ THREADS RUNS WARMUP``; prints {"ms": [...]}.
TIMER = """
import json, sys, time
import numpy as np
tflite, photo, threads, runs, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
image = np.load(photo)["input"]  # (1, 300, 300, 3) uint8, as LiteRT is fed
{setup}
for _ in range(warmup):
    call()
ms = []
for _ in range(runs):
    start = time.perf_counter()
    call()
    ms.append(1000 * (time.perf_counter() - start))
print(json.dumps({{"ms": ms}}))
"""

SETUP = {
    "tinynet": """
import tinynet
model = tinynet.load(tflite)
model.threads = threads
x = (image.astype(np.float32) - 128) / 128
def call():
    out = model.forward(x)
    model.postprocess(out["box_encodings"][0], out["class_scores"][0])
""",
    "litert": """
from ai_edge_litert.interpreter import Interpreter
interpreter = Interpreter(model_path=tflite, num_threads=threads)
interpreter.allocate_tensors()
index = interpreter.get_input_details()[0]["index"]
def call():
    interpreter.set_tensor(index, image)
    interpreter.invoke()
""",
}


def run_engine(python, engine, tflite, photo, threads, runs, warmup):
    result = subprocess.run([python, "-c", TIMER.format(setup=SETUP[engine]), str(tflite), str(photo), str(threads),
                             str(runs), str(warmup)], capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"{engine} ({threads} threads) failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["ms"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tflite", type=Path, default=DEFAULT_TFLITE, help="a TF-OD SSD .tflite")
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help="an npz whose 'input' is the uint8 image")
    parser.add_argument("--peer-python", default="/work/fxenv/bin/python", help="an interpreter with ai-edge-litert")
    parser.add_argument("--engines", nargs="+", default=list(SETUP), choices=list(SETUP))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    print(f"{'engine':<12} {'threads':>7} {'median ms':>10} {'best ms':>8}")
    for threads in args.threads:
        for engine in args.engines:
            python = sys.executable if engine == "tinynet" else args.peer_python
            ms = sorted(run_engine(python, engine, args.tflite, args.photo, threads, args.runs, args.warmup))
            print(f"{engine:<12} {threads:>7} {ms[len(ms) // 2]:>10.2f} {ms[0]:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
