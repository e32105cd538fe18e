"""SSDLite320 (backbone + head, one 320x320 image) side by side: tinynet, ONNX Runtime and PyTorch, same weights.

    python bench/detect.py [--pth FILE] [--peer-python /work/fxenv/bin/python] [--threads 1 2] [--rounds N]

Each engine runs in a worker process of its own, and the engines alternate over ``--rounds`` rounds in shuffled
order (bench/timing.py, as bench/models.py does). tinynet runs in this interpreter's environment; PyTorch and ONNX
Runtime in ``--peer-python``'s, which needs torch, torchvision and onnxruntime. The ONNX file is torchvision's
model (backbone + head, the part tinynet's ``forward`` runs) exported once with torch.onnx into a temporary folder.
Postprocessing is left out of every engine. Before timing, every engine's head outputs for the seeded input are
checked against tinynet's (within 1e-3 of the largest: see TOLERANCE). The table: median ms (p10-p90) over all rounds, and
tinynet's median over each peer's and over the best peer's.
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import timing  # noqa: E402  (bench/, on the path just above)

SHARED = HERE.parents[1] / "shared"
DEFAULT_PTH = SHARED / "golden_dense" / "tv_ssdlite320_mobilenet_v3_large.pth"
ENGINES = ["tinynet", "onnxruntime", "pytorch"]
# Of the largest output. An exporter or layout error is off by O(1); float32 rounding is far less, but the seeded
# random-weight detector amplifies it on this input: PyTorch's float32 is 5e-5 from its own float64, tinynet 5e-4.
TOLERANCE = 1e-3


def seeded_input():
    """(1, 3, 320, 320) float32 in [-1, 1] (the range of the transform's output), NCHW as the peers take it."""
    return np.random.default_rng(0).uniform(-1, 1, (1, 3, 320, 320)).astype(np.float32)


def torchvision_backbone_and_head(pth):
    """torchvision's ssdlite320_mobilenet_v3_large from ``pth`` (any class count), cut to backbone + head."""
    import torch
    import torchvision

    class BackboneAndHead(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.backbone, self.head = model.backbone, model.head

        def forward(self, x):
            out = self.head(list(self.backbone(x).values()))
            return out["cls_logits"], out["bbox_regression"]

    state = torch.load(pth, map_location="cpu")
    classes = state["head.classification_head.module_list.0.1.weight"].shape[0] // 6
    model = torchvision.models.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                                       num_classes=classes)
    model.load_state_dict(state)
    return BackboneAndHead(model).eval()


def export_onnx(pth, onnx_path):
    import torch

    torch.onnx.export(torchvision_backbone_and_head(pth), (torch.zeros(1, 3, 320, 320),), onnx_path,
                      input_names=["x"], dynamo=False)


def make_runner(engine, threads, pth, onnx_path):
    """The worker's ``make`` (bench/timing.serve): -> (run, outputs: cls_logits then bbox_regression, flattened)."""
    x = seeded_input()
    joined = lambda cls_logits, bbox_regression: np.concatenate([np.ravel(cls_logits), np.ravel(bbox_regression)])
    if engine == "tinynet":
        import tinynet

        model = tinynet.load(pth)
        model.threads = threads
        nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        run = lambda: model.forward(nhwc)
        return lambda case: (run, lambda: joined(*run().values()))
    if engine == "onnxruntime":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        run = lambda: session.run(None, {session.get_inputs()[0].name: x})
        return lambda case: (run, lambda: joined(*run()))
    import torch

    torch.set_num_threads(threads)
    net, tx = torchvision_backbone_and_head(pth), torch.from_numpy(x)

    def run():
        with torch.inference_mode():
            return net(tx)

    return lambda case: (run, lambda: joined(*(t.numpy() for t in run())))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pth", type=Path, default=DEFAULT_PTH, help="a torchvision ssdlite320_mobilenet_v3_large .pth")
    parser.add_argument("--peer-python", default="/work/fxenv/bin/python",
                        help="an interpreter with torch, torchvision and onnxruntime")
    parser.add_argument("--engines", nargs="+", default=ENGINES, choices=ENGINES)
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--rounds", type=int, default=7, help="visits per engine and thread count")
    parser.add_argument("--runs", type=int, default=10, help="timed forwards per visit")
    parser.add_argument("--gap", type=float, default=0.1, help="seconds of idle before each visit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--onnx", type=Path, help=argparse.SUPPRESS)  # the workers' copy of the exported file
    parser.add_argument("--export", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export:
        return export_onnx(args.pth, args.onnx)
    if args.worker:
        return timing.serve(make_runner(args.worker, args.threads[0], args.pth, args.onnx))
    if "tinynet" not in args.engines:
        raise SystemExit("tinynet itself must be one of the engines")
    print(f"# {' '.join(sys.argv)}")
    with tempfile.TemporaryDirectory() as work:
        onnx_path = Path(work) / "ssdlite320.onnx"
        extra = ["--pth", str(args.pth), "--onnx", str(onnx_path)]
        if "onnxruntime" in args.engines:
            subprocess.run([args.peer_python, __file__, "--export", *extra], check=True, timeout=1800)
        python = {e: None if e == "tinynet" else args.peer_python for e in args.engines}
        commands = {e: (lambda threads, e=e: timing.worker_command(__file__, e, threads, python[e], extra))
                    for e in args.engines}
        check = lambda workers, case: timing.check_outputs(workers, case, TOLERANCE, "SSDLite320 head outputs")
        timing.run_all(commands, [{"model": "ssdlite320"}], args.threads, args.rounds, lambda case: args.runs,
                       args.gap, lambda case, threads: {"model": "SSDLite320", "threads": str(threads)}, check)


if __name__ == "__main__":
    main()
