"""``tinynet segment``: the command's arguments and its run, kept out of tinynet/cli.py (which only lists it)."""
import json
import sys
from pathlib import Path

from tinynet import inputs
from tinynet.errors import TinynetError
from tinynet.preprocess import open_image
from tinynet.segmentation.render import mask_image, overlay_image


def add_arguments(sub, thread_count):
    sub.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    sub.add_argument("-m", "--model", metavar="NAME|PATH", help="a segmentation model: store name or weight file")
    sub.add_argument("--out", default=".", metavar="DIR", help="folder for NAME.mask.png (default: here)")
    sub.add_argument("--overlay", action="store_true", help="also write NAME.overlay.png, the mask over the photo")
    sub.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    sub.add_argument("--threads", type=thread_count, metavar="N", help="compute threads (default: all cores)")


def _note(message):
    print(f"tinynet: {message}", file=sys.stderr, flush=True)


def run(args, open_model):
    files, failed = inputs.image_files(args.images, _note)
    if not files:
        raise TinynetError("no images to segment" + (" (no path given exists)" if failed else ""))
    model = open_model(args.model, args.threads)
    if getattr(model, "task", "classification") != "segmentation":
        raise TinynetError(f"{args.model or model.arch} is a {getattr(model, 'task', 'classification')} model; "
                           "give a segmentation model with --model (e.g. a torchvision lraspp .pth or a DeepLab .tflite)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failures = len(failed)
    for path in files:
        try:
            photo = open_image(path)
            result = model.segment(photo)
        except TinynetError as e:
            _note(f"{path}: {e}")
            failures += 1
            continue
        written = {"mask": out / f"{Path(path).stem}.mask.png"}
        mask_image(result.mask).save(written["mask"])
        if args.overlay:
            written["overlay"] = out / f"{Path(path).stem}.overlay.png"
            overlay_image(photo, result.mask).save(written["overlay"])
        fractions = sorted(result.fractions().items(), key=lambda item: -item[1])
        if args.json:
            print(json.dumps({"image": str(path), **{k: str(v) for k, v in written.items()},
                              "classes": {label: round(share, 6) for label, share in fractions}}))
        else:
            print("\n".join([f"{path} -> {', '.join(str(p) for p in written.values())}"] +
                            [f"  {100 * share:6.2f}%  {label}" for label, share in fractions]))
    return 1 if failures else 0
