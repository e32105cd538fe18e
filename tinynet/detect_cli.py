"""``tinynet detect IMAGE...``: boxes per image, as a table, JSON lines, or drawn on copies of the photos."""
import json
import sys
from pathlib import Path

from tinynet.detection.model import DETECT_BATCH
from tinynet.errors import ImageError, TinynetError

DEFAULT_THRESHOLD = 0.3


def add_arguments(sub, positive_int, thread_count, model_help):
    sub.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    sub.add_argument("-m", "--model", metavar="NAME|PATH", help=model_help)
    sub.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, metavar="SCORE",
                     help=f"smallest score shown (default {DEFAULT_THRESHOLD})")
    sub.add_argument("--top", type=positive_int, metavar="N", help="at most N boxes per image")
    sub.add_argument("--json", action="store_true", help="one JSON object per image and line instead of a table")
    sub.add_argument("--draw", metavar="DIR", help="write a copy of each photo with its boxes into DIR")
    sub.add_argument("--batch", type=positive_int, default=DETECT_BATCH, metavar="N",
                     help=f"images per forward pass (default {DETECT_BATCH})")
    sub.add_argument("--threads", type=thread_count, metavar="N", help="compute threads (default: all cores)")


def format_detections(path, detections, as_json):
    if as_json:
        return json.dumps({"image": str(path), "detections": [
            {**d.as_dict(), "score": round(d.score, 6), "box": [round(v, 2) for v in d.box]} for d in detections]})
    lines = [f"{path}  ({len(detections)} boxes)"]
    lines += [f"  {d.score:6.3f}  {d.label:<16} ({d.box[0]:.0f}, {d.box[1]:.0f}, {d.box[2]:.0f}, {d.box[3]:.0f})"
              for d in detections]
    return "\n".join(lines) + "\n"


def run(args, open_model, image_files, note, exit_failure):
    files, failed = image_files(args.images)
    if not files:
        raise TinynetError("no images to detect in" + (" (no path given exists)" if failed else ""))
    model = open_model(args.model, args.threads)
    if model.task != "detection":
        raise TinynetError(f"{args.model or 'the default model'} is a {model.task} model ({model.arch}): "
                           "`tinynet detect` needs a detection model such as ssdlite320_mobilenet_v3_large")
    out_dir = Path(args.draw) if args.draw else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(files), args.batch):
        chunk = files[start:start + args.batch]
        # One forward per batch; an image that cannot be read comes back as its ImageError, in its place.
        for path, detections in zip(chunk, model.detect(chunk, score_threshold=args.threshold, top=args.top,
                                                        batch_size=args.batch, errors="return")):
            if isinstance(detections, ImageError):
                note(f"skipped {detections}")
                if args.json:
                    print(json.dumps({"image": str(path), "error": str(detections)}))
                failed.append(path)
                continue
            print(format_detections(path, detections, args.json))
            if out_dir is not None:
                from tinynet.draw import draw_detections  # Pillow drawing only when asked for

                draw_detections(path, detections).save(out_dir / f"{Path(path).stem}.png")
        sys.stdout.flush()
    if failed:
        note(f"{len(failed)} of {len(files) + len(failed)} inputs could not be read")
        return exit_failure
    return 0
