"""``tinynet train``: the command's arguments and its run, kept out of tinynet/cli.py (which only lists it)."""
import argparse
import json
import sys

from tinynet.confusion_plot import save_confusion_png
from tinynet.terminal import printable
from tinynet.train import format_report, train


def add_arguments(sub, thread_count):
    sub.add_argument("data_dir", metavar="DATA_DIR", help="one folder per class, optionally inside train/ and val/")
    sub.add_argument("-m", "--model", required=True, metavar="NAME|PATH", help="base model: store name or weight file")
    sub.add_argument("--out", required=True, metavar="NAME", help="store name for the trained model")
    sub.add_argument("--epochs", type=int, default=500, metavar="N", help="at most N full-batch L-BFGS iterations (default 500)")
    sub.add_argument("--val-split", type=float, default=0.2, metavar="F",
                     help="share of each class kept for validation without a val/ folder (default 0.2)")
    sub.add_argument("--no-augment", dest="augment", action="store_false",
                     help="train on the images only (default: also flipped copies and random resized crops)")
    sub.add_argument("--augment", dest="augment", action="store_true", help=argparse.SUPPRESS)  # the default; kept for older commands
    sub.add_argument("--l2", type=float, metavar="X", help="L2 penalty (default: chosen by cross-validation on train)")
    sub.add_argument("--no-class-weights", dest="class_weights", action="store_const", const=None, default="balanced",
                     help="weigh every image the same (default: each class the same total weight)")
    sub.add_argument("--unknown-threshold", type=float, metavar="P",
                     help="predict 'unknown' below this top probability (stored with the model)")
    sub.add_argument("--fine-tune", type=int, default=0, metavar="N", help="also train the base model's last N blocks")
    sub.add_argument("--seed", type=int, default=0, help="seed for the split and the crops (default 0)")
    sub.add_argument("--threads", type=thread_count, metavar="N",
                     help="compute threads for the features (default: all cores; on a busy machine 1 is faster)")
    sub.add_argument("--plot", metavar="FILE.png", help="also write the confusion matrix as a PNG")
    sub.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args):
    result = train(args.data_dir, args.model, out=args.out, epochs=args.epochs, val_split=args.val_split,
                   augment=args.augment, seed=args.seed, l2=args.l2, class_weights=args.class_weights,
                   unknown_threshold=args.unknown_threshold, fine_tune=args.fine_tune, threads=args.threads)
    for path, reason in result.skipped:
        print(printable(f"skipped {path}: {reason}"), file=sys.stderr)
    if args.plot:
        split = "val" if "val" in result.report else "train"
        save_confusion_png(result.report[split]["confusion"], result.report["classes"], args.plot,
                           f"{args.out}: {split} confusion (rows: true, columns: predicted)")
    if args.json:
        print(json.dumps({**result.report, "model": args.out, "path": str(result.path), "skipped": result.skipped}))
    else:
        print(format_report(result.report))
        print(f"saved as {args.out} ({result.path}): tinynet classify IMAGE --model {args.out}")
    return 0
