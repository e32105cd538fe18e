"""Where other libraries keep the same pretrained files, so ``tinynet pull`` can reuse them offline.

  torchvision  $TORCH_HOME/hub/checkpoints/<file>   (TORCH_HOME defaults to $XDG_CACHE_HOME/torch, ~/.cache/torch)
  timm (HF)    $HF_HUB_CACHE/models--<org>--<name>/snapshots/<revision>/<file>
               (HF_HUB_CACHE defaults to $HF_HOME/hub, HF_HOME to $XDG_CACHE_HOME/huggingface)
  Keras        $KERAS_HOME/{models,datasets}/<file>  (KERAS_HOME defaults to ~/.keras); ``get_file(...,
               extract=True)`` also leaves the archive's members there, so the weights member counts too.

Only locations are decided here; the caller verifies what it finds.
"""
import os
from pathlib import Path


def _xdg_cache():
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def torch_checkpoints():
    return Path(os.environ.get("TORCH_HOME") or _xdg_cache() / "torch") / "hub" / "checkpoints"


def hf_hub():
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ.get("HF_HOME") or _xdg_cache() / "huggingface") / "hub"


def keras_dirs():
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    return [home / "models", home / "datasets"]


def candidates(entry):
    """Existing files that may hold ``entry``'s weights, most specific first.

    An entry with ``hf_repo`` is looked up only in Hugging Face's cache, where its generic file name
    ("model.safetensors") is qualified by the repository; other entries by their distinctive file name.
    """
    if entry.hf_repo:
        repo_dir = hf_hub() / ("models--" + entry.hf_repo.replace("/", "--"))
        found = []
        main = repo_dir / "refs" / "main"
        if main.is_file():
            found.append(repo_dir / "snapshots" / main.read_text().strip() / entry.file)
        found.extend(sorted((repo_dir / "snapshots").glob(f"*/{entry.file}")))
        return [p for p in dict.fromkeys(found) if p.is_file()]
    names = [entry.file] + ([Path(entry.member).name] if entry.member else [])
    places = [torch_checkpoints()] + keras_dirs()
    return [place / name for place in places for name in names if (place / name).is_file()]
