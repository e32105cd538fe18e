"""``tinynet eval`` on the folder-per-class layout: its extra options and its run (tinynet/cli.py lists it)."""
import json
import sys

from tinynet.confusion_plot import save_confusion_png
from tinynet.errors import TinynetError
from tinynet.eval_folders import evaluate_folders
from tinynet.train import format_scores


def add_arguments(sub):
    sub.add_argument("--json", action="store_true", help="print the result as JSON")
    sub.add_argument("--plot", metavar="FILE.png", help="without --labels: write the confusion matrix as a PNG")
    sub.add_argument("--unknown-threshold", type=float, metavar="P",
                     help="without --labels: 'unknown' below this top probability (default: the model's own)")


def run_folders(model, args):
    if args.limit:
        raise TinynetError("--limit needs --labels (a class folder is read whole)")
    result = evaluate_folders(model, args.images, batch_size=args.batch, unknown_threshold=args.unknown_threshold)
    for path, reason in result["skipped"]:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if args.plot:
        save_confusion_png(result["confusion"], result["classes"], args.plot)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"accuracy {100 * result['accuracy']:.2f}% on {result['images']} images in {len(result['classes'])} class "
          f"folders ({result['seconds']:.1f} s, {result['images_per_second']:.1f} images/s)")
    print(format_scores(result, result["classes"], "eval"))
    return 0
