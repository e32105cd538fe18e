"""``tinynet export NAME --format onnx|tflite [--out FILE]``: the command line of tinynet.exporter."""
from pathlib import Path

from tinynet.exporter import FORMATS, export


def add_arguments(sub):
    sub.add_argument("model", metavar="MODEL", help="store name (e.g. one made by `tinynet train`) or weight file")
    sub.add_argument("--format", required=True, choices=sorted(FORMATS), help="onnx (NCHW) or tflite (NHWC)")
    sub.add_argument("--out", metavar="FILE", help="where to write (default: MODEL's name with .onnx or .tflite, here)")
    sub.add_argument("--resolution", type=int, metavar="PX", help="TFLite input size (default: the model's)")
    sub.add_argument("--float-activations", action="store_true",
                     help="leave out the 8-bit activation grids of a quantization-aware-trained model")


def run(args):
    from tinynet.cli import open_model  # the CLI's rules for a model name (store, file, pull)

    model = open_model(args.model)
    out = Path(args.out) if args.out else Path(Path(args.model).stem + FORMATS[args.format])
    path = export(model, out, args.format, args.resolution, args.float_activations)
    print(f"wrote {path} ({args.format}, float32, {_input_description(args.format, model, args.resolution)}, "
          f"output logits (N, {model.num_classes}))")
    return 0


def _input_description(format, model, resolution):
    from tinynet.preprocess import for_model

    if format == "onnx":
        return "input (N, 3, H, W)"
    s = resolution or for_model(model).size
    return f"input (1, {s}, {s}, 3)"
