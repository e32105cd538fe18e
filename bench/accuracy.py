"""ImageNet accuracy of every real pretrained file in the shared folder, beside the reference runtime's.

For each .tflite / .h5 listed in <shared>/weights/SOURCES.md: load it with tinynet (float32 weights,
float32 activations, the preprocessing the file carries), evaluate top-1/top-5 on
<shared>/images/imagenet_val_1300, and print a markdown row next to the LiteRT figure SOURCES.md gives.

    python bench/accuracy.py [--shared ../shared] [--limit N]

The table in weights/README.md was produced by this script.
"""
import argparse
import os
import re

from pathlib import Path

import tinynet
from tinynet.evaluate import evaluate

ROW = re.compile(r"^\| (?P<file>[\w./-]+\.(?:tflite|h5)) \|.*\| (?P<top1>0\.\d+) / (?P<top5>0\.\d+)(?:, see note)? \|$")

def reference_rows(sources_md):
    """(relative file, LiteRT top-1, LiteRT top-5) for every weight file in SOURCES.md's table."""
    for line in sources_md.read_text().splitlines():
        match = ROW.match(line.strip())
        if match:
            yield match["file"], float(match["top1"]), float(match["top5"])

def main():
    default_shared = os.environ.get("TINYNET_SHARED", Path(__file__).resolve().parents[2] / "shared")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(default_shared))
    parser.add_argument("--limit", type=int, default=None, help="only the first N validation images")
    args = parser.parse_args()
    val = args.shared / "images" / "imagenet_val_1300"
    labels = val / "dataset.txt"
    if args.limit:
        lines = labels.read_text().splitlines()[: args.limit]
        labels = Path(os.environ.get("TMPDIR", "/tmp")) / "tinynet_accuracy_labels.txt"
        labels.write_text("\n".join(lines) + "\n")
    print("| file | model | LiteRT top-1 / top-5 | tinynet top-1 / top-5 | change | float activations | images/s |")
    print("|---|---|---|---|---|---|---|")
    for rel, ref1, ref5 in reference_rows(args.shared / "weights" / "SOURCES.md"):
        model = tinynet.load(args.shared / "weights" / rel)
        size = model.meta.get("preprocess", {}).get("size", 224)
        result = evaluate(model, labels, images_dir=val)
        plain = "same"  # quantization-aware-trained files also run with plain float activations, for comparison
        if model.quantized_activations:
            model.quantized_activations = False
            other = evaluate(model, labels, images_dir=val)
            plain = f"{other['top1']:.3f} / {other['top5']:.3f}"
        described = f"{model.arch} {model.width} / {size}"
        print(f"| {rel} | {described} | {ref1:.3f} / {ref5:.3f} | {result['top1']:.3f} / {result['top5']:.3f} "
              f"| {100 * (result['top1'] - ref1):+.1f} | {plain} | {result['images_per_second']:.0f} |", flush=True)

if __name__ == "__main__":
    main()
