"""SSDLite320 (backbone + head, one 320x320 image) side by side: tinynet, ONNX Runtime and PyTorch, same weights.

    python bench/detect.py [--pth FILE] [--peer-python /work/fxenv/bin/python] [--runs N] [--threads 1 2]

Each engine and thread count runs in a process of its own (a new interpreter: no engine's thread pool or caches
affect another's). tinynet runs in this interpreter's environment; PyTorch and ONNX Runtime in ``--peer-python``'s,
which needs torch, torchvision and onnxruntime. The ONNX file is torchvision's model (backbone + head, the part
tinynet's ``forward`` runs) exported once with torch.onnx into a temporary folder. Postprocessing is left out of
every engine. The table shows each engine's median and best of ``--runs`` timed calls after ``--warmup`` calls.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_PTH = SHARED / "golden_dense" / "tv_ssdlite320_mobilenet_v3_large.pth"

# Each engine's timing loop, run as ``python -c CODE PTH ONNX THREADS RUNS WARMUP``; prints {"ms": [...]}.
TIMER = """
import json, sys, time
import numpy as np
pth, onnx_path, threads, runs, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
x = np.random.default_rng(0).standard_normal((1, 3, 320, 320)).astype(np.float32)
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
model = tinynet.load(pth)
model.threads = threads
nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
call = lambda: model.forward(nhwc)
""",
    "pytorch": """
import torch
torch.set_num_threads(threads)
from bench_detect_peer import ssdlite_backbone_and_head
net = ssdlite_backbone_and_head(pth)
tx = torch.from_numpy(x)
def call():
    with torch.inference_mode():
        net(tx)
""",
    "onnxruntime": """
import onnxruntime
options = onnxruntime.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
session = onnxruntime.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
call = lambda: session.run(None, {name: x})
""",
}

# Written next to the ONNX file for the peer interpreter: torchvision's model cut to backbone + head.
PEER_MODULE = '''
import torch
import torchvision


class BackboneAndHead(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.backbone, self.head = model.backbone, model.head

    def forward(self, x):
        out = self.head(list(self.backbone(x).values()))
        return out["cls_logits"], out["bbox_regression"]


def ssdlite_backbone_and_head(pth):
    state = torch.load(pth, map_location="cpu")
    classes = state["head.classification_head.module_list.0.1.weight"].shape[0] // 6
    model = torchvision.models.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                                       num_classes=classes)
    model.load_state_dict(state)
    return BackboneAndHead(model).eval()


def export(pth, onnx_path):
    net = ssdlite_backbone_and_head(pth)
    torch.onnx.export(net, (torch.zeros(1, 3, 320, 320),), onnx_path, input_names=["x"], dynamo=False)
'''


def run_engine(python, engine, pth, onnx_path, threads, runs, warmup, work):
    code = TIMER.format(setup=SETUP[engine])
    env_path = str(work)  # bench_detect_peer.py lives there
    result = subprocess.run([python, "-c", f"import sys; sys.path.insert(0, {env_path!r})\n{code}", str(pth),
                             str(onnx_path), str(threads), str(runs), str(warmup)],
                            capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"{engine} ({threads} threads) failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["ms"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pth", type=Path, default=DEFAULT_PTH, help="a torchvision ssdlite320_mobilenet_v3_large .pth")
    parser.add_argument("--peer-python", default="/work/fxenv/bin/python",
                        help="an interpreter with torch, torchvision and onnxruntime")
    parser.add_argument("--engines", nargs="+", default=list(SETUP), choices=list(SETUP))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        (work / "bench_detect_peer.py").write_text(PEER_MODULE)
        onnx_path = work / "ssdlite320.onnx"
        if "onnxruntime" in args.engines:
            subprocess.run([args.peer_python, "-c", f"import sys; sys.path.insert(0, {str(work)!r}); "
                            f"from bench_detect_peer import export; export({str(args.pth)!r}, {str(onnx_path)!r})"],
                           check=True, capture_output=True, timeout=1800)
        print(f"{'engine':<12} {'threads':>7} {'median ms':>10} {'best ms':>8}")
        for threads in args.threads:
            for engine in args.engines:
                python = sys.executable if engine == "tinynet" else args.peer_python
                ms = sorted(run_engine(python, engine, args.pth, onnx_path, threads, args.runs, args.warmup, work))
                print(f"{engine:<12} {threads:>7} {ms[len(ms) // 2]:>10.2f} {ms[0]:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
