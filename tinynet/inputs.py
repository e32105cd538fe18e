"""Which image files a list of command-line style arguments names: files, folders (searched recursively) and globs.

Shared by ``tinynet classify`` and ``tinynet.distributed`` so that both read exactly the same inputs.
"""
import glob
import sys
from pathlib import Path

from tinynet.terminal import printable

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def _note(message):
    print(f"tinynet: {printable(message)}", file=sys.stderr, flush=True)


def image_files(arguments, note=_note):
    """``(files, missing)``: files named in ``arguments`` plus image files found (recursively, sorted) in named
    folders and (sorted) glob matches; arguments that name nothing are reported with ``note`` and returned in
    ``missing``."""
    files, missing = [], []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                note(f"no image files in folder {argument}")
            files.extend(found)
        elif path.exists():
            files.append(path)
        elif glob.has_magic(str(argument)) and glob.glob(str(argument), recursive=True):
            files.extend(sorted(Path(p) for p in glob.glob(str(argument), recursive=True) if Path(p).is_file()))
        else:
            note(f"skipped {argument}: no such file or folder")
            missing.append(argument)
    return files, missing
