"""The local model store: converted models by name, ready to load with a memory map.

Layout under ``home()`` ($TINYNET_HOME, else $XDG_CACHE_HOME/tinynet, else ~/.cache/tinynet):

    models/NAME.safetensors    one model in tinynet's format (tinynet.save); its metadata says where it came from
    models/.lock-NAME          held during a pull of NAME, so a second ``pull`` of the same name waits and then finds the
                               model instead of downloading it again (pulls of different names run side by side)
    models/.work-*/            a pull's or import's scratch space; removed on success and on every failure, and
                               by the next pull or import if its process was killed (its .busy lock is free)

A model becomes visible only by an atomic rename of a complete file, so a reader never sees half a model
and two writers cannot interleave (the last rename wins, and both wrote the same thing).
"""
import contextlib
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from tinynet import caches, io, registry
from tinynet.download import DownloadError, OfflineError, fetch, verify
from tinynet.errors import TinynetError, WeightsError
from tinynet.labels import read_names

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the atomic rename alone keeps the store consistent
    fcntl = None

SUFFIX = ".safetensors"
IMAGENET_OUTPUTS = (1000, 1001)  # 1001: TensorFlow's, with "background" first
WEIGHT_SUFFIXES = (".tar.gz", ".tgz", ".safetensors", ".tflite", ".pth", ".pt", ".h5", ".hdf5", ".keras", ".onnx")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def home():
    """The store's root directory (not created here)."""
    if os.environ.get("TINYNET_HOME"):
        return Path(os.environ["TINYNET_HOME"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "tinynet"


def models_dir():
    return home() / "models"


def is_valid_name(name):
    return bool(NAME.fullmatch(name)) and not name.endswith(SUFFIX)


def path_of(name):
    """Where the model ``name`` is (or would be) stored."""
    if not is_valid_name(name):
        raise TinynetError(f"invalid model name {name!r}: use letters, digits, '.', '_' and '-' (e.g. mobilenet_v2)")
    return models_dir() / (name + SUFFIX)


def names():
    """Names of the stored models, sorted."""
    folder = models_dir()
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(SUFFIX)] for p in folder.glob("*" + SUFFIX) if not p.name.startswith("."))


def find(name):
    """Path of the stored model ``name``, or None."""
    if not is_valid_name(name):
        return None
    path = path_of(name)
    return path if path.is_file() else None


def locate(name):
    """Path of the stored model ``name``; otherwise a TinynetError that says how to get it."""
    path = find(name)
    if path is not None:
        return path
    raise TinynetError(missing_message(name))


def is_path(name):
    """Whether the CLI reads ``name`` as a file path rather than a stored model's name: it contains a
    directory separator (``./mobilenet_v3_large`` is a path), or ends in a weight-file suffix. A bare
    name always means the store, so a file of that name in the working directory cannot shadow it."""
    name = str(name)
    return "/" in name or os.sep in name or name.lower().endswith(WEIGHT_SUFFIXES)


def missing_message(name):
    if is_path(name):
        return f"no such weight file: {name}"
    known = registry.load()
    if name in known:
        return (f"model {name} is not downloaded yet: run `tinynet pull {name}` "
                f"(offline: `tinynet import FILE --name {name}` with a copy of {known[name].file})")
    return (f"no file or stored model named {name!r}: `tinynet models` lists the known models, "
            f"`tinynet pull NAME` downloads one, `tinynet import FILE --name NAME` adds a local weight file")


def default_name():
    """The model used when none is given: $TINYNET_MODEL; else mobilenet_v3_large if stored; else the only
    stored model; else, with an empty store, mobilenet_v3_large (for the caller to pull). With several
    stored models and none of them the default, raises a TinynetError that lists them."""
    chosen = os.environ.get("TINYNET_MODEL")
    if chosen:
        return chosen
    stored = names()
    if registry.DEFAULT_MODEL in stored:
        return registry.DEFAULT_MODEL
    if len(stored) == 1:
        return stored[0]
    if stored:
        raise TinynetError(f"no --model given and the default {registry.DEFAULT_MODEL} is not in the store: "
                           f"pass --model with one of {', '.join(stored)} (or set TINYNET_MODEL, or run "
                           f"`tinynet pull {registry.DEFAULT_MODEL}`)")
    return registry.DEFAULT_MODEL


def save(model, name):
    """Store ``model`` as ``name`` atomically (tinynet.io.save writes a temporary file and renames it); returns
    its path."""
    dest = path_of(name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    io.save(model, dest)
    return dest


def import_file(file, name=None, labels=None, force=False):
    """Convert the weight file ``file`` (anything tinynet.load reads, or a .tgz holding one .tflite) into the
    store as ``name`` (default: the file's stem). ``labels``: a class-names file (tinynet.labels.read_names) to
    store with it. A stored model of that name is replaced only with ``force``. Returns ``(name, path)``."""
    file = Path(file).expanduser()
    if not (file.is_file() or file.is_dir()):  # a folder: a Hugging Face checkpoint (config.json + weights)
        raise TinynetError(f"no such file: {file}")
    name = _name_from(file) if name is None else name
    if find(name) is not None and not force:  # validates the name too
        raise TinynetError(f"a model named {name} is already in the store ({path_of(name)}): pass --force "
                           f"(force=True) to replace it, or choose another --name")
    path_of(name)  # validate before any work
    entry = registry.load().get(name)
    known = entry is not None and file.is_file() and _is_download_of(entry, file)  # e.g. a copy of what `pull` would fetch
    with _workdir() as work:
        model = io.load(_unpack(file, entry.member if known else None, work))
        if known:
            _apply_registry(model, entry)
        elif "labels" not in model.meta and model.num_classes in IMAGENET_OUTPUTS:
            model.meta["labels"] = "imagenet1k"  # what every public MobileNet with these output counts was trained on
        if labels is not None:
            model.meta["labels"] = read_names(labels, model.num_classes)
        model.meta["source"] = f"import:{file.name}"
        return name, save(model, name)


def remove(name):
    """Delete the stored model ``name``; returns the path it had. A pull of the same name waits for it."""
    path = path_of(name)
    with _locked(name) if path.parent.is_dir() else contextlib.nullcontext():
        if not path.is_file():
            stored = ", ".join(names()) or "none"
            raise TinynetError(f"no stored model named {name!r} (stored: {stored})")
        path.unlink()
    return path


def pull(name, progress=None, force=False, registry_file=None):
    """Make the pretrained model ``name`` available in the store; returns ``(path, how)`` where ``how`` is
    "present", "cache:<path>" or the URL it was downloaded from.

    Looks in the store, then in torchvision's, Hugging Face's and Keras' caches, then downloads.
    ``progress`` (tinynet.progress.Progress) shows the download; ``registry_file`` adds entries as
    $TINYNET_REGISTRY does.
    """
    entries = registry.load(registry_file)
    if name not in entries:
        raise TinynetError(f"unknown model {name!r}; known: {', '.join(entries)} "
                           f"(`tinynet import FILE --name {name}` adds your own)")
    entry = entries[name]
    dest = path_of(name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _locked(name):
        if dest.is_file() and not force:
            return dest, "present"
        with _workdir() as work:
            source, how = _cached_copy(entry), None
            if source is not None:
                how = f"cache:{source}"
            else:
                source, how = work / Path(entry.file).name, entry.url
                _download(entry, source, progress)
            model = io.load(_unpack(source, entry.member, work), arch=entry.arch)
            _apply_registry(model, entry)
            model.meta["source"] = entry.url
            return save(model, name), how


def _apply_registry(model, entry):
    """The conventions the publisher states for these weights: its preprocessing, ImageNet class names."""
    model.meta["preprocess"] = {**model.meta.get("preprocess", {}), **entry.preprocess}
    model.meta["labels"] = "imagenet1k"


def _is_download_of(entry, path):
    """Whether ``path`` is the file ``entry`` downloads: its published digest when there is one, else its name."""
    if not (entry.sha256 or entry.sha256_prefix):
        return path.name == entry.file
    try:
        verify(path, entry.sha256, entry.sha256_prefix)
    except DownloadError:
        return False
    return True


def _download(entry, dest, progress):
    retry = f"`tinynet pull {entry.name}`"
    try:
        fetch(entry.url, dest, progress)
        verify(dest, entry.sha256, entry.sha256_prefix, what=entry.url)
    except OfflineError as e:
        raise OfflineError(f"{e}; retry with {retry} when online, or fetch that URL on another machine and run "
                           f"`tinynet import {entry.file} --name {entry.name}`") from None
    except DownloadError as e:
        raise DownloadError(f"{e}; nothing was stored, run {retry} to try again") from None
    finally:
        if progress:
            progress.close()


def _cached_copy(entry):
    """The first file in another library's cache that holds ``entry``'s weights: an extracted archive member,
    or a copy of the download that passes its check (a damaged one is ignored, and the file downloaded)."""
    for path in caches.candidates(entry):
        if path.name != entry.file or _is_download_of(entry, path):
            return path
    return None


def _unpack(path, member, work):
    """``path`` itself, or the weights member extracted from a tar archive into ``work``.

    Only the member's content is used: it is written under a name chosen here, so member paths
    ("../x", "/etc/x") and links in the archive cannot write anywhere.
    """
    if path.is_dir() or not tarfile.is_tarfile(path):
        return path
    try:
        with tarfile.open(path, "r:*") as archive:
            members = [m for m in archive.getmembers() if m.isreg() and m.name.endswith(".tflite")]
            chosen = [m for m in members if member is None or PurePosixPath(m.name).name == member]
            if len(chosen) != 1:
                wanted = member or "one .tflite file"
                found = ", ".join(m.name for m in members) or "no .tflite file"
                raise WeightsError(f"{path.name}: expected {wanted} in the archive, found {found}")
            out = work / PurePosixPath(chosen[0].name).name  # a bare file name ending in .tflite
            with archive.extractfile(chosen[0]) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise WeightsError(f"{path.name}: damaged archive ({e})") from None
    return out


def _name_from(file):
    stem = file.name
    for suffix in WEIGHT_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    name = re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip("._-")
    if not is_valid_name(name):
        raise TinynetError(f"cannot make a model name from {file.name}: pass --name NAME")
    return name


@contextlib.contextmanager
def _workdir():
    """A fresh ``.work-*`` folder, held by a lock on its ``.busy`` file while in use; folders whose lock
    nobody holds were left by a killed process and are removed first."""
    folder = models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_workdirs(folder)
    work = Path(tempfile.mkdtemp(dir=folder, prefix=".work-"))
    try:
        with open(work / ".busy", "a") as busy:
            if fcntl is not None:
                fcntl.flock(busy, fcntl.LOCK_EX)
            yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _remove_stale_workdirs(folder):
    if fcntl is None:  # no way to tell a live folder from a dead one: leave them
        return
    for work in folder.glob(".work-*"):
        if work.is_symlink() or not work.is_dir():
            continue
        try:
            with open(work / ".busy", "a") as busy:
                fcntl.flock(busy, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while its owner is alive
        except OSError:
            continue
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _locked(name):
    """One lock per model name: a pull of one model never waits for the pull of another."""
    if fcntl is None:
        yield
        return
    with open(models_dir() / f".lock-{name}", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
