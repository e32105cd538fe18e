"""tinynet's command line: ``tinynet COMMAND ...`` (also ``python -m tinynet``).

Exit codes: 0 success, 1 failure (a bad file, a failed download, any image that could not be
classified), 2 usage error (bad arguments), 130 interrupted. A user error is one line on stderr,
never a traceback. Results go to stdout; progress bars and notes go to stderr.
"""
import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

import numba
from PIL import Image

import tinynet
from tinynet import inputs, preprocess, registry, store
from tinynet.errors import TinynetError
from tinynet.terminal import printable
from tinynet.evaluate import evaluate, read_labels
from tinynet.labels import IMAGENET_CLASSES, labels_for, read_names
from tinynet.model import top_labels
from tinynet.output import FORMATS, ClassifyWriter, PerImageWriter
from tinynet.prefetch import image_batches
from tinynet.progress import Progress
from tinynet.warmup import start_workers, warmup
from tinynet import detect_cli, eval_cli, export_cli, segment_cli, train_cli
from tinynet.spec import count, layers_for_width

EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
# Pillow checks the limit on the images it makes while resizing and cropping too (raising at twice it): below this,
# a model's own input size could be refused.
MIN_MAX_PIXELS = 1_000_000


class UsageError(TinynetError):
    """Bad command-line arguments (exit code 2)."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and an exception, not a usage dump and sys.exit."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message} (see `{self.prog} --help`)")


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def thread_count(text):
    value = positive_int(text)
    if value > numba.config.NUMBA_NUM_THREADS:
        raise argparse.ArgumentTypeError(f"at most {numba.config.NUMBA_NUM_THREADS} on this machine, got {value}")
    return value


def note(message):
    print(f"tinynet: {printable(message)}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# Models by name or path


def open_model(name=None, threads=None, **options):
    """The model a command names: a weight file, a stored name, or (no name) the default model.
    A known pretrained name that is not in the store yet is pulled first. ``options``: tinynet.load's
    ``precision`` and ``profile`` (None: its defaults)."""
    options = {k: v for k, v in options.items() if v is not None}
    if name is None:
        name = store.default_name()
        if name != registry.DEFAULT_MODEL and "TINYNET_MODEL" not in os.environ:
            note(f"no --model given: using {name}, the only model in the store")
    if store.is_path(name):
        model = tinynet.load(name, **options)
    else:  # a bare name is a stored model, never a file of that name in the working directory
        if store.find(name) is None and name in registry.load():
            note(f"{name} is not in the store yet: fetching it once (later runs use {store.path_of(name)})")
            _pull(name)
        model = tinynet.load(store.locate(name), **options)
    model.threads = threads
    return model


def _pull(name, force=False):
    return store.pull(name, progress=Progress(f"downloading {name}", unit="B"), force=force)


# ----------------------------------------------------------------------------------------------
# classify


def image_files(arguments):
    return inputs.image_files(arguments, note)


def pixel_limit(text):
    value = positive_int(text)
    if value < MIN_MAX_PIXELS:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_MAX_PIXELS:,}, got {value:,}")
    return value


def set_max_pixels(args):
    """--max-pixels, else $TINYNET_MAX_PIXELS: the decompression-bomb limit (Pillow's, which tinynet.preprocess
    enforces), raised (or lowered) on purpose for this run."""
    value = getattr(args, "max_pixels", None)
    if value is None and os.environ.get("TINYNET_MAX_PIXELS"):
        try:
            value = pixel_limit(os.environ["TINYNET_MAX_PIXELS"])
        except argparse.ArgumentTypeError as e:
            raise UsageError(f"TINYNET_MAX_PIXELS: {e}") from None
    if value is not None:
        Image.MAX_IMAGE_PIXELS = value


def output_format(args):
    if args.json and args.format not in ("text", "json"):
        raise UsageError(f"tinynet classify: error: --json and --format {args.format} disagree (use one)")
    return "json" if args.json else args.format


def cmd_classify(args):
    if args.distributed:
        if args.labels or args.format != "text":
            raise UsageError("tinynet classify: error: --distributed writes Parquet: --labels and --format do not apply")
        from tinynet.distributed import run_from_cli  # dask is an optional extra
        return run_from_cli(args)
    writer = ClassifyWriter(output_format(args))
    files, failed = image_files(args.images)
    missing = len(failed)
    if not files:
        raise TinynetError("no images to classify" + (" (no path given exists)" if failed else ""))
    start_workers()  # on a fresh install, the compile workers start while the model loads
    model = open_model(args.model, args.threads, precision=args.precision, profile=args.profile)
    if model.task != "classification":
        raise TinynetError(f"{args.model} is a {model.task} model ({model.arch}): use `tinynet {model.answer}`")
    names = read_names(args.labels, model.num_classes) if args.labels else labels_for(model)
    transform = preprocess.for_model(model)
    if writer.header():
        print(writer.header())
    for path in failed:  # arguments that named nothing (already noted on stderr)
        record = writer.failure(path, f"{path}: no such file or folder")
        if record is not None:
            print(record)
    many = len(files) > args.batch
    progress = Progress("classifying", total=len(files), unit="images", enabled=None if many else False)
    for chunk, x, errors in image_batches(files, transform, args.batch):
        results = iter(top_labels(model.probabilities(x), names, args.top) if x is not None else [])
        progress.clear()
        for path, error in zip(chunk, errors):
            if error is None:
                print(writer.result(path, next(results)))
                continue
            note(f"skipped {error}")
            record = writer.failure(path, error)  # a record per input in JSON and CSV: consumers see failures too
            if record is not None:
                print(record)
            failed.append(path)
        sys.stdout.flush()
        progress.update(len(chunk))
    progress.close()  # leave the final count on screen: a fast last batch may not have been drawn
    if failed:
        note(f"{len(failed)} of {len(files) + missing} inputs could not be classified")
        return EXIT_FAILURE
    return 0


# ----------------------------------------------------------------------------------------------
# models, info


def cmd_models(args):
    stored = set(store.names())
    entries = registry.load()
    rows = [("NAME", "ARCH", "PARAMS", "MACS", "TOP-1", "LICENSE", "CHECKSUM", "LOCAL")]
    for e in entries.values():
        counted = count(layers_for_width(e.arch, e.width, e.num_classes))
        rows.append((e.name, e.arch, f"{counted['params'] / 1e6:.2f}M", f"{counted['macs'] / 1e6:.0f}M",
                     f"{e.top1:.1f}%", e.license, e.verification, "yes" if e.name in stored else "-"))
    print(_table(rows))
    others = sorted(stored - set(entries))
    if others:
        print("\nAlso in the store (imported):")
        for name in others:
            print(f"  {name}")
    print(f"\nstore: {store.models_dir()}")
    print("PARAMS/MACS: as tinynet runs the model (BatchNorm folded), at 224x224. TOP-1: published ImageNet-1k.")
    print("CHECKSUM: the published sha256 a download must match ('prefix': torchvision publishes the first 8 hex")
    print("digits in its file names); 'none published': only the size and the file's structure can be checked.")
    print("Get one: tinynet pull NAME   (offline: tinynet import FILE --name NAME)")
    return 0


def cmd_info(args):
    if not store.is_path(args.model) and store.find(args.model) is None and args.model in tinynet.ARCHITECTURES:
        model = tinynet.create(args.model)
        model.meta["source"] = "architecture only (no weights loaded)"
    else:
        model = open_model(args.model, precision=args.precision, profile=args.profile)
    resolution = args.resolution or getattr(model, "input_size", (preprocess.for_model(model).size,))[0]
    counted = model.count(resolution)
    width = model.width
    print(f"{model.arch}  width {width if width is not None else 'custom'}  {model.num_classes} classes  "
          f"padding {model.padding}  input {resolution}x{resolution}")
    if model.meta.get("source"):
        print(f"source: {printable(model.meta['source'])}")
    print()
    rows = [("#", "LAYER", "OP", "OUTPUT", "PARAMS", "MACS")]
    for i, layer in enumerate(counted["layers"]):
        rows.append((str(i), layer["name"], layer["op"], "x".join(map(str, layer["output"])),
                     f"{layer['params']:,}", f"{layer['macs']:,}"))
    rows.append(("", "total", "", "", f"{counted['params']:,}", f"{counted['macs']:,}"))
    print(_table(rows, right={0, 4, 5}))
    if getattr(model, "program", None) is not None:
        _print_integer_graph(model)
    return 0


def _print_integer_graph(model):
    """The integer graph an int8 model runs: each operator's output tensor with its quantization."""
    program = model.program
    print(f"\nint8 graph, profile {model.profile} ({program.kernels} kernels): {len(program.operators)} operators")
    rows = [("#", "OP", "TENSOR", "SHAPE", "TYPE", "SCALE", "ZERO POINT")]
    tensors = [(None, t) for t in program.input_tensors] + [(op.op, program.graph.tensors[op.output])
                                                            for op in program.operators]
    for op, t in tensors:
        scale = f"{float(t.scale[0]):.6g}" if t.scale.size == 1 else (f"{t.scale.size} scales" if t.scale.size else "")
        zero_point = str(int(t.zero_point[0])) if t.zero_point.size == 1 else ""
        rows.append((str(op.index) if op else "in", op.name if op else "input", printable(t.name)[:48],
                     "x".join(map(str, t.shape)), str(t.dtype), scale, zero_point))
    print(_table(rows, right={0, 5, 6}))


def _table(rows, right=()):
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows)


# ----------------------------------------------------------------------------------------------
# pull, import, eval, warmup


def cmd_pull(args):
    path, how = _pull(args.name, force=args.force)
    if how == "present":
        print(printable(f"{args.name} is already in the store: {path}"))
        return 0
    notes = registry.load()[args.name].notes
    what = f"{args.name} ({notes})" if notes else args.name
    if how.startswith("cache:"):
        print(printable(f"{what}: converted from a local cache ({how[len('cache:'):]}) into {path}"))
    else:
        print(printable(f"{what}: downloaded from {how} into {path}"))
    return 0


def cmd_import(args):
    name, path = store.import_file(args.file, args.name, labels=args.labels, force=args.force)
    model = tinynet.load(path)
    print(printable(f"imported {args.file} as {name} ({model.arch}, {model.num_classes} classes) into {path}"))
    print(f"use it: tinynet classify IMAGE --model {name}")
    return 0


def cmd_labels(args):
    model = open_model(args.model)
    for index, name in enumerate(labels_for(model)):
        print(f"{index}\t{name}")
    return 0


def cmd_rm(args):
    path = store.remove(args.name)
    print(f"removed {args.name} ({path})")
    return 0


def cmd_eval(args):
    model = open_model(args.model, args.threads, precision=args.precision, profile=args.profile)
    if args.labels is None:  # folder-per-class layout
        return eval_cli.run_folders(model, args)
    if args.plot or args.unknown_threshold is not None:
        raise TinynetError("--plot and --unknown-threshold are for the folder-per-class layout (no --labels)")
    progress = Progress("evaluating", unit="images")

    def report(done, total):
        if progress.total is None:
            progress.start(total)
        progress.update(done - progress.done)

    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        labels = _first_samples(args.labels, args.images, args.limit, work) if args.limit else args.labels
        on_image = None
        if args.per_image:
            form = args.format or ("csv" if args.per_image.lower().endswith(".csv") else "json")
            names = labels_for(model)[1:] if model.num_classes == IMAGENET_CLASSES + 1 else labels_for(model)
            out = stack.enter_context(open(args.per_image, "w", encoding="utf-8", newline=""))
            on_image = PerImageWriter(out, form, names)
        result = evaluate(model, labels, args.images, batch_size=args.batch, progress=report, on_image=on_image)
    progress.close()
    for path, message in result["skipped"]:
        note(f"skipped {message}")
    if result["skipped"]:
        note(f"{len(result['skipped'])} unreadable images left out of the accuracy")
    if result["index_base"]:
        note(f"warning: {result['index_base']}")
    if args.json:
        print(json.dumps({**result, "skipped": [(str(p), m) for p, m in result["skipped"]]}))
        return 0
    print(f"top-1 {100 * result['top1']:.2f}%  top-5 {100 * result['top5']:.2f}%  on {result['images']} images  "
          f"({result['seconds']:.1f} s, {result['images_per_second']:.1f} images/s)")
    return 0


def _first_samples(labels, images, limit, work):
    """A labels file listing only the first ``limit`` images of ``labels`` (absolute paths)."""
    subset = work / "labels.txt"
    subset.write_text("".join(f"{path.resolve()} {label}\n" for path, label in read_labels(labels, images, limit)))
    return subset


def cmd_warmup(args):
    seconds = warmup(progress=Progress("compiling kernels", unit="model families"))
    print(f"kernels ready in {seconds:.1f} s")
    return 0


# ----------------------------------------------------------------------------------------------
# Parser and entry point


COMMANDS = {
    "classify": (cmd_classify, "Name what is in photos.",
                 "Classify images or whole folders (searched recursively) with a MobileNet. Prints the top-K\n"
                 "labels with probabilities per image as it goes; images that cannot be read are reported on\n"
                 "stderr and skipped (exit code 1 at the end).",
                 "tinynet classify photo.jpg\n  tinynet classify holiday/ --top 3 --json > labels.jsonl\n"
                 "  tinynet classify cat.png --model mobilenet_v2"),
    "segment": (lambda args: segment_cli.run(args, open_model), "Label every pixel of photos (segmentation).",
                "Per-pixel classes with a segmentation model (torchvision LR-ASPP or DeepLab v3 .pth, or a TF\n"
                "DeepLab MobileNet V2 .tflite, float or uint8): writes NAME.mask.png (palette PNG, pixel value =\n"
                "class id; VOC colours) and, with --overlay, NAME.overlay.png; prints the share of the photo each\n"
                "class covers.",
                "tinynet segment photo.jpg --model lraspp_mobilenet_v3_large.pth --out masks/ --overlay\n"
                "  tinynet segment holiday/ --model deeplabv3_mnv2_pascal_quant.tflite --json"),
    "models": (cmd_models, "List the pretrained models tinynet knows.",
               "The pretrained models `tinynet pull` can fetch, with size, cost, published accuracy, license,\n"
               "how downloads are verified, and whether each is already in the local store.",
               "tinynet models"),
    "info": (cmd_info, "Show a model's layers, parameters and MACs.",
             "Per-layer table of a model (a store name, a weight file, or an architecture name such as\n"
             "mobilenet_v3_small): operation, output shape, parameters and multiply-accumulates, with totals.",
             "tinynet info mobilenet_v3_large\n  tinynet info weights/mobilenet_v2.pth --resolution 160"),
    "detect": (lambda args: detect_cli.run(args, open_model, image_files, note, EXIT_FAILURE),
               "Find objects: labelled boxes per photo (detection models).",
               "Boxes, labels and scores per image with a detection model (SSDLite320: a torchvision\n"
               "ssdlite320_mobilenet_v3_large .pth; a TF Object Detection API SSD .tflite; or either imported\n"
               "into the store); --draw writes copies of the photos with the boxes drawn. Images run --batch at a time.",
               "tinynet detect street.jpg --model ssdlite320_coco.pth --threshold 0.5 --draw boxes/\n"
               "  tinynet import ssdlite320_coco.pth --name ssdlite && tinynet detect photos/ --model ssdlite"),
    "pull": (cmd_pull, "Download a pretrained model into the store.",
             "Download official pretrained weights (see `tinynet models`), verify them, convert them to\n"
             "tinynet's format and keep them in the store ($TINYNET_HOME, default ~/.cache/tinynet).\n"
             "Weights already in torchvision's, Hugging Face's or Keras' caches are reused without a download.",
             "tinynet pull mobilenet_v3_large"),
    "import": (cmd_import, "Add a local weight file to the store (works offline).",
               "Convert a .pth (torchvision/timm), .safetensors, .tflite, .h5 (Keras) or a TensorFlow .tgz\n"
               "holding a .tflite into the store, under --name (default: the file's name). Detectors too\n"
               "(SSDLite320 .pth, TF-OD SSD .tflite): then `tinynet detect --model NAME`.",
               "tinynet import mobilenet_v2_1.0_224_quant.tflite --name mobilenet_v2\n"
               "  tinynet classify photo.jpg --model mobilenet_v2"),
    "labels": (cmd_labels, "List a model's classes.",
               "One line per output of the model: its index, a tab, its class name. The output is a valid\n"
               "--labels FILE for `tinynet classify` and `tinynet import`.",
               "tinynet labels mobilenet_v3_large | grep -i retriever"),
    "rm": (cmd_rm, "Remove a model from the store.",
           "Delete a stored model (pulled, imported or trained); `tinynet pull` or `tinynet import` brings\n"
           "it back.",
           "tinynet rm flowers"),
    "eval": (cmd_eval, "Measure top-1/top-5 accuracy on labelled images.",
             "Accuracy of a model on a folder of images with a labels file: one '<image> <class index>' per\n"
             "line (class indices 0-based, ImageNet synset order); or, without --labels, on one folder per\n"
             "class named as the model's labels (e.g. a model from `tinynet train`). Unreadable images are\n"
             "skipped and named. Warns when the labels fit the model far better shifted by one (1-based labels).",
             "tinynet eval mobilenet_v3_large --images val/ --labels val/labels.txt --limit 500\n"
             "  tinynet eval mobilenet_v3_large --images val/ --labels val/labels.txt --per-image wrong.csv\n"
             "  tinynet eval flowers --images flowers/val/ --plot confusion.png"),
    "train": (train_cli.run, "Train a classifier on your own images (folder per class).",
              "Fit a new head on a frozen base model's features (cached, so re-runs are fast); stores the\n"
              "result under --out with its labels, for `tinynet classify --model NAME`.",
              "tinynet train flowers/ --model mobilenet_v3_large --out flowers"),
    "export": (export_cli.run, "Write a model as ONNX or TFLite, for ONNX Runtime or LiteRT.",
               "Export a model (e.g. one made by `tinynet train`) as a float32 .onnx (input (N, 3, H, W)) or\n"
               ".tflite (input (1, S, S, 3)) file that computes the same logits; the input is the preprocessed\n"
               "image, as `forward` takes it.",
               "tinynet export flowers --format tflite --out flowers.tflite"),
    "warmup": (cmd_warmup, "Compile the kernels once, ahead of the first real run.",
               "Compile (or load from Numba's cache) every kernel, so that the first `tinynet classify`\n"
               "does not pay for compilation.",
               "tinynet warmup"),
}


ENVIRONMENT = (
    ("TINYNET_HOME", "the model store (default ~/.cache/tinynet)"),
    ("TINYNET_MODEL", "the default for --model"),
    ("TINYNET_PROGRESS", "0 hides, 1 forces progress bars (default: shown on a terminal)"),
    ("TINYNET_MAX_PIXELS", "the decompression-bomb limit, as --max-pixels"),
    ("TINYNET_REGISTRY", "a JSON file of extra or replacement `tinynet pull` entries"),
    ("TORCH_HOME, HF_HOME, KERAS_HOME", "caches `tinynet pull` reuses"),
)


def environment_help():
    lines = ["environment variables:"]
    for name, meaning in ENVIRONMENT:
        current = os.environ.get(name) if "," not in name else None
        lines.append(f"  {name:<32} {meaning}" + (f" (now: {current})" if current else ""))
    return "\n".join(lines)


def default_model_help():
    chosen = os.environ.get("TINYNET_MODEL")
    if chosen:
        return f"default: {chosen} (from $TINYNET_MODEL)"
    return f"default: $TINYNET_MODEL, else {registry.DEFAULT_MODEL} (or the only stored model)"


def build_parser():
    parser = Parser(prog="tinynet", description="Framework-free MobileNet inference: classify photos, "
                    "manage pretrained models.", epilog="Run `tinynet COMMAND --help` for a command's options "
                    "and an example.\n\n" + environment_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tinynet {tinynet.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (run, summary, description, example) in COMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=description,
                                  epilog=f"example:\n  {example}\n\n{environment_help()}",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(run=run)
        _add_arguments(name, sub)
    return parser


def _add_precision_arguments(sub):
    sub.add_argument("--precision", choices=("int8", "float"), help="quantized .tflite files: int8 (default) runs "
                     "their integer graph, bit for bit LiteRT's; float runs them dequantized")
    sub.add_argument("--profile", choices=("litert", "reference"), help="int8 arithmetic: litert (default), what "
                     "LiteRT computes on x86; reference, TFLite's reference kernels")


def _add_arguments(name, sub):
    model_help = f"store name (see `tinynet models`) or weight file; {default_model_help()}"
    if name in ("classify", "eval", "info"):
        _add_precision_arguments(sub)
    if name in ("classify", "eval", "train"):
        sub.add_argument("--max-pixels", type=pixel_limit, metavar="N", help="refuse images of more than N pixels "
                         "(default: $TINYNET_MAX_PIXELS, else Pillow's decompression-bomb limit, 89,478,485)")
    if name == "classify":
        sub.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
        sub.add_argument("-m", "--model", metavar="NAME|PATH", help=model_help)
        sub.add_argument("-k", "--top", type=positive_int, default=5, metavar="K", help="labels per image (default 5)")
        sub.add_argument("--format", choices=FORMATS, default="text", help="text (default), json (one object per "
                         "line) or csv (a row per prediction)")
        sub.add_argument("--json", action="store_true", help="the same as --format json")
        sub.add_argument("--labels", metavar="FILE", help="class names for the model's outputs, one per line")
        sub.add_argument("--batch", type=positive_int, default=8, metavar="N", help="images per forward pass (default 8)")
        sub.add_argument("--threads", type=thread_count, metavar="N", help="compute threads (default: all cores)")
        sub.add_argument("--distributed", action="store_true", help="run on a Dask cluster, write --out (Parquet)")
        sub.add_argument("--scheduler", metavar="tcp://HOST:8786", help="with --distributed: an existing cluster")
        sub.add_argument("--workers", type=positive_int, metavar="N", help="with --distributed: a local cluster of N")
        sub.add_argument("--out", metavar="PREDICTIONS.parquet", help="with --distributed: the Parquet dataset folder")
        sub.add_argument("--resume", action="store_true", help="with --distributed: keep partitions already written")
    elif name == "segment":
        segment_cli.add_arguments(sub, thread_count)
    elif name == "info":
        sub.add_argument("model", metavar="MODEL", help="store name, weight file or architecture name")
        sub.add_argument("--resolution", type=positive_int, metavar="PX", help="input size for MACs (default: the model's)")
    elif name == "pull":
        sub.add_argument("name", metavar="NAME", help="a name from `tinynet models`")
        sub.add_argument("--force", action="store_true", help="fetch again even if the model is in the store")
    elif name == "import":
        sub.add_argument("file", metavar="FILE", help=".pth, .safetensors, .tflite, .h5, .keras, .onnx, .tgz, or a Hugging Face model folder")
        sub.add_argument("--name", metavar="NAME", help="name in the store (default: from the file name)")
        sub.add_argument("--labels", metavar="FILE", help="class names to store with it, one per line")
        sub.add_argument("--force", action="store_true", help="replace a stored model of the same name")
    elif name == "labels":
        sub.add_argument("model", metavar="MODEL", help=model_help.split(";")[0])
    elif name == "rm":
        sub.add_argument("name", metavar="NAME", help="a stored model's name (`tinynet models` lists them)")
    elif name == "train":
        train_cli.add_arguments(sub, thread_count)
    elif name == "detect":
        detect_cli.add_arguments(sub, positive_int, thread_count, model_help.split(";")[0])
    elif name == "export":
        export_cli.add_arguments(sub)
    elif name == "eval":
        sub.add_argument("model", metavar="MODEL", help=model_help.split(";")[0])
        sub.add_argument("--images", required=True, metavar="DIR",
                         help="folder the labels file's paths are in; without --labels, one folder per class")
        sub.add_argument("--labels", metavar="FILE", help="'<image> <class index>' per line")
        eval_cli.add_arguments(sub)
        sub.add_argument("--batch", type=positive_int, default=32, metavar="N", help="images per forward pass (default 32)")
        sub.add_argument("--limit", type=positive_int, metavar="N", help="only the first N images")
        sub.add_argument("--per-image", metavar="FILE", help="write each image's prediction to FILE")
        sub.add_argument("--format", choices=("json", "csv"), help="of --per-image (default: csv for a .csv FILE, "
                         "else JSON lines)")
        sub.add_argument("--threads", type=thread_count, metavar="N", help="compute threads (default: all cores)")


def main(argv=None):
    """Run the command line; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        set_max_pixels(args)
        return args.run(args)
    except UsageError as e:
        print(printable(e), file=sys.stderr)
        return EXIT_USAGE
    except TinynetError as e:
        print(f"tinynet: error: {printable(e)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`tinynet classify dir/ | head`); stop quietly, and keep Python's own flush at
        # exit from failing again on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except OSError as e:
        print(printable(f"tinynet: error: {e.strerror or e}: {e.filename or ''}".rstrip(": ")), file=sys.stderr)
        return EXIT_FAILURE
