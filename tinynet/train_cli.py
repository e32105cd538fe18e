"""``tinynet train``: the command's arguments and its run, kept out of tinynet/cli.py (which only lists it)."""
import json
import sys

from tinynet.terminal import printable
from tinynet.train import format_report, train


def add_arguments(sub):
    sub.add_argument("data_dir", metavar="DATA_DIR", help="one folder per class, optionally inside train/ and val/")
    sub.add_argument("-m", "--model", required=True, metavar="NAME|PATH", help="base model: store name or weight file")
    sub.add_argument("--out", required=True, metavar="NAME", help="store name for the trained model")
    sub.add_argument("--epochs", type=int, default=500, metavar="N", help="at most N full-batch L-BFGS iterations (default 500)")
    sub.add_argument("--val-split", type=float, default=0.2, metavar="F",
                     help="share of each class kept for validation without a val/ folder (default 0.2)")
    sub.add_argument("--augment", action="store_true", help="also train on flipped copies and random resized crops")
    sub.add_argument("--seed", type=int, default=0, help="seed for the split and the crops (default 0)")
    sub.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args):
    result = train(args.data_dir, args.model, out=args.out, epochs=args.epochs, val_split=args.val_split,
                   augment=args.augment, seed=args.seed)
    for path, reason in result.skipped:
        print(printable(f"skipped {path}: {reason}"), file=sys.stderr)
    if args.json:
        print(json.dumps({**result.report, "model": args.out, "path": str(result.path), "skipped": result.skipped}))
    else:
        print(format_report(result.report))
        print(f"saved as {args.out} ({result.path}): tinynet classify IMAGE --model {args.out}")
    return 0
