"""The local model store: import, names, default model, loading by name, archive safety."""
import hashlib
import io
import json
import tarfile

import numpy as np
import pytest

import tinynet
from conftest import shared_path
from tinynet import registry, store


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TINYNET_MODEL", raising=False)
    monkeypatch.delenv("TINYNET_REGISTRY", raising=False)
    return tmp_path / "home"


def test_home_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("TINYNET_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert store.home() == tmp_path / "xdg" / "tinynet"
    monkeypatch.setenv("TINYNET_HOME", str(tmp_path / "mine"))
    assert store.home() == tmp_path / "mine"


def test_imported_model_loads_by_name_with_identical_outputs(home):
    original = shared_path("golden", "tv_mobilenet_v2.pth")
    name, path = store.import_file(original, "v2")
    assert (name, path) == ("v2", home / "models" / "v2.safetensors")
    assert store.names() == ["v2"]
    x = np.random.default_rng(1).standard_normal((2, 224, 224, 3)).astype(np.float32)
    by_name = tinynet.load("v2")
    assert np.array_equal(by_name.forward(x), tinynet.load(original).forward(x))
    assert by_name.meta["source"] == "import:tv_mobilenet_v2.pth"
    assert by_name.meta["labels"] == "imagenet1k"  # 1000 outputs: ImageNet names


def test_import_names_the_model_after_the_file(home):
    name, _ = store.import_file(shared_path("golden", "tv_mobilenet_v3_small.pth"))
    assert name == "tv_mobilenet_v3_small" and store.find(name) is not None


def test_import_replaces_a_model_of_the_same_name_only_when_forced(home):
    store.import_file(shared_path("golden", "tv_mobilenet_v2.pth"), "m")
    with pytest.raises(tinynet.TinynetError, match="already in the store.*--force"):
        store.import_file(shared_path("golden", "tv_mobilenet_v3_small.pth"), "m")
    assert tinynet.load("m").arch == "mobilenet_v2"
    store.import_file(shared_path("golden", "tv_mobilenet_v3_small.pth"), "m", force=True)
    assert tinynet.load("m").arch == "mobilenet_v3_small"
    assert sorted(p.name for p in (home / "models").iterdir()) == ["m.safetensors"]


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "", "x" * 101, "v2.safetensors"])
def test_invalid_names_are_refused(home, name):
    with pytest.raises(tinynet.TinynetError, match="invalid model name"):
        store.import_file(shared_path("golden", "tv_mobilenet_v2.pth"), name)
    assert not (home / "models").exists() or store.names() == []


def test_a_file_that_is_not_weights_leaves_nothing(home, tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"definitely not a checkpoint" * 10)
    with pytest.raises(tinynet.WeightsError):
        store.import_file(junk, "junk")
    assert [p.name for p in (home / "models").iterdir()] == []


def test_unknown_names_teach_the_commands(home):
    with pytest.raises(tinynet.TinynetError, match="`tinynet models`.*`tinynet pull NAME`.*`tinynet import FILE --name NAME`"):
        tinynet.load("no_such_model")
    with pytest.raises(tinynet.TinynetError, match="`tinynet pull mobilenet_v3_small`"):
        tinynet.load("mobilenet_v3_small")  # known, not downloaded
    with pytest.raises(tinynet.TinynetError, match="no such weight file"):
        tinynet.load("missing/file.pth")


def test_default_model_choice(home, monkeypatch):
    assert store.default_name() == registry.DEFAULT_MODEL  # nothing stored: the one `pull` would fetch
    store.import_file(shared_path("golden", "tv_mobilenet_v3_small.pth"), "only")
    assert store.default_name() == "only"
    store.import_file(shared_path("golden", "tv_mobilenet_v2.pth"), "second")
    with pytest.raises(tinynet.TinynetError, match="pass --model with one of only, second"):
        store.default_name()
    store.import_file(shared_path("golden", "tv_mobilenet_v3_large.pth"), registry.DEFAULT_MODEL)
    assert store.default_name() == registry.DEFAULT_MODEL
    monkeypatch.setenv("TINYNET_MODEL", "second")
    assert store.default_name() == "second"


def archive(tmp_path, members):
    """A .tgz with ``members`` = [(name, bytes or None for a symlink)]."""
    path = tmp_path / "weights.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def test_archive_import_extracts_only_the_tflite_content(home, tmp_path):
    tflite = shared_path("weights", "coral_test_data", "mobilenet_v1_0.25_128_quant.tflite").read_bytes()
    path = archive(tmp_path, [("./info.txt", b"hello"), ("../../../evil/model.tflite", tflite)])
    name, _ = store.import_file(path, "v1")
    assert tinynet.load("v1").arch == "mobilenet_v1"
    assert not list(tmp_path.rglob("evil"))  # the member's path was never used on disk
    assert sorted(p.name for p in (home / "models").iterdir()) == ["v1.safetensors"]


def test_archive_links_are_not_followed(home, tmp_path):
    path = archive(tmp_path, [("model.tflite", None)])
    with pytest.raises(tinynet.WeightsError, match="found no .tflite file"):
        store.import_file(path, "linked")
    assert [p.name for p in (home / "models").iterdir()] == []


def test_archive_with_several_tflite_files_needs_a_choice(home, tmp_path):
    path = archive(tmp_path, [("a.tflite", b"x"), ("b.tflite", b"y")])
    with pytest.raises(tinynet.WeightsError, match="expected one .tflite file in the archive, found a.tflite, b.tflite"):
        store.import_file(path, "two")


def test_registry_file_adds_and_replaces_entries(tmp_path, monkeypatch):
    extra = tmp_path / "extra.json"
    extra.write_text('[{"name": "mobilenet_v2", "arch": "mobilenet_v2", "url": "http://mirror/v2.pth", '
                     '"file": "v2.pth", "license": "x", "top1": 1, "preprocess": {"preset": "torchvision"}}]')
    monkeypatch.setenv("TINYNET_REGISTRY", str(extra))
    entries = registry.load()
    assert entries["mobilenet_v2"].url == "http://mirror/v2.pth"
    assert entries["mobilenet_v3_large"].url.startswith("https://download.pytorch.org/")
    extra.write_text('[{"name": "x", "colour": "red"}]')
    with pytest.raises(tinynet.TinynetError, match="unknown field 'colour'"):
        registry.load()


def test_builtin_registry_is_consistent():
    for entry in registry.load().values():
        assert entry.arch in tinynet.ARCHITECTURES
        tinynet.preprocess.resolve(entry.preprocess)  # every preset and override exists
        if entry.sha256_prefix:  # torchvision: the prefix is the hash part of the file name
            assert entry.file.endswith(f"-{entry.sha256_prefix}.pth") and entry.url.endswith("/" + entry.file)
        if entry.member:
            assert entry.url.endswith(".tgz") and entry.member.endswith(".tflite")
    assert registry.DEFAULT_MODEL in registry.load()


def test_importing_the_published_file_keeps_the_publishers_conventions(home, tmp_path, monkeypatch):
    original = shared_path("golden", "tv_mobilenet_v3_small.pth")
    prefix = hashlib.sha256(original.read_bytes()).hexdigest()[:8]
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps([{"name": "small", "arch": "mobilenet_v3_small", "url": "http://x/small.pth",
                                  "file": f"small-{prefix}.pth", "license": "x", "top1": 1, "sha256_prefix": prefix,
                                  "preprocess": {"preset": "torchvision", "crop_fraction": 0.9}}]))
    monkeypatch.setenv("TINYNET_REGISTRY", str(extra))
    store.import_file(original, "small")  # the published bytes, under another file name
    assert tinynet.load("small").meta["preprocess"] == {"preset": "torchvision", "crop_fraction": 0.9}
    store.import_file(shared_path("golden", "tv_mobilenet_v2.pth"), "small", force=True)  # other weights: the file's own
    assert tinynet.load("small").meta["preprocess"] == {"preset": "torchvision"}


def test_remove_deletes_only_that_model(home):
    store.import_file(shared_path("golden", "tv_mobilenet_v3_small.pth"), "a")
    store.import_file(shared_path("golden", "tv_mobilenet_v3_small.pth"), "b")
    assert store.remove("a") == home / "models" / "a.safetensors"
    assert store.names() == ["b"]
    with pytest.raises(tinynet.TinynetError, match="no stored model named 'a' \\(stored: b\\)"):
        store.remove("a")
    with pytest.raises(tinynet.TinynetError, match="invalid model name"):
        store.remove("../b")
