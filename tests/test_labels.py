"""The built-in ImageNet names against the shared synset list and photo labels, and labels_for."""
import re

import pytest

import tinynet
from conftest import shared_path
from tinynet.errors import WeightsError
from tinynet.labels import imagenet1k, labels_for, read_names

# torchvision renames one class of each pair whose first WordNet synonym is shared: 134 "crane" (the
# bird; 517 is the machine) and 639 "maillot, tank suit" (638 is plain "maillot"). Its name is then not
# one of the synonyms, but its first word is.
RENAMED = {134: "crane bird", 639: "maillot tank suit"}


def synonyms():
    lines = shared_path("weights", "labels", "synset_words_1000.txt").read_text().splitlines()
    return [[s.strip() for s in line.split(" ", 1)[1].split(",")] for line in lines]  # "n01440764 tench, Tinca tinca"


def test_thousand_unique_names():
    names = imagenet1k()
    assert len(names) == 1000 and len(set(names)) == 1000
    assert all(name and name == name.strip() for name in names)


def test_names_follow_synset_order():
    expected = synonyms()
    assert len(expected) == 1000
    mismatched = {i: name for i, (name, words) in enumerate(zip(imagenet1k(), expected)) if name not in words}
    assert mismatched == RENAMED
    for i in RENAMED:
        assert RENAMED[i].split()[0] in expected[i]


def labels_md_rows():
    """(file, [(index, name) expected], [names observed]) from LABELS.md's table, parentheses dropped."""
    rows = []
    for line in shared_path("images", "LABELS.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not re.search(r"\.(jpg|png|bmp)$", cells[0]):
            continue
        expected, observed = (re.sub(r"\([^)]*\)", "", c) for c in cells[3:5])
        pairs = [(int(i), name) for i, name in re.findall(r"(?<![\w-])(\d+) ([A-Za-z][A-Za-z' -]*[A-Za-z])", expected)]
        names = [part.split(":")[-1].strip() for part in observed.split(";")]
        rows.append((cells[0], pairs, names))
    return rows


def test_photo_labels_agree_with_labels_md():
    rows = labels_md_rows()
    assert len(rows) == 10
    names = imagenet1k()
    checked = 0
    for file, pairs, observed in rows:
        for index, name in pairs:
            assert names[index].lower() == name.lower(), (file, index)
            checked += 1
        for name in observed:
            assert name in names, (file, name)
    assert checked >= 10  # every photo with a class, plus chelsea's three cat classes


def test_labels_for_imagenet_models():
    model = tinynet.create("mobilenet_v2", width=0.35)
    model.meta["labels"] = "imagenet1k"
    names = labels_for(model)
    assert names[0] == "tench" and names[652] == "military uniform" and len(names) == 1000
    with_background = tinynet.create("mobilenet_v2", width=0.35, num_classes=1001)
    with_background.meta["labels"] = "imagenet1k"
    assert labels_for(with_background)[:2] == ["background", "tench"]
    wrong = tinynet.create("mobilenet_v2", width=0.35, num_classes=10)
    wrong.meta["labels"] = "imagenet1k"
    with pytest.raises(WeightsError, match="10 outputs"):
        labels_for(wrong)


def test_labels_for_own_and_numbered_names():
    model = tinynet.create("mobilenet_v2", width=0.35, num_classes=3)
    assert labels_for(model) == ["class 0", "class 1", "class 2"]
    model.meta["labels"] = ["cat", "dog", "hot dog"]
    assert labels_for(model) == ["cat", "dog", "hot dog"]
    model.meta["labels"] = ["cat", "dog"]
    with pytest.raises(WeightsError, match="2 label names"):
        labels_for(model)
    model.meta["labels"] = ["cat", "dog", 3]
    with pytest.raises(WeightsError, match="strings"):
        labels_for(model)


@pytest.mark.parametrize("text", ["cat\ndog\nhot dog\n", "cat\r\ndog\r\nhot dog", "0\tcat\n1\tdog\n2\thot dog\n\n"])
def test_names_file_plain_or_as_tinynet_labels_prints(tmp_path, text):
    file = tmp_path / "names.txt"
    file.write_bytes(text.encode())
    assert read_names(file, 3) == ["cat", "dog", "hot dog"]


def test_names_file_with_numbers_that_are_not_an_index_keeps_them(tmp_path):
    file = tmp_path / "names.txt"
    file.write_text("7\televen\n3\tmusketeers\n")  # not 0, 1: names that happen to start with a number
    assert read_names(file, 2) == ["7\televen", "3\tmusketeers"]


@pytest.mark.parametrize("names, outputs, words", [
    (["cat", "dog"], 3, "2 class names, the model has 3 outputs (a 1001-output"),
    (["background", "cat", "dog"], 2, "remove it"),
    (["cat", "", "dog"], 3, "names.txt:2: empty class name"),
])
def test_names_file_that_does_not_fit_is_one_line(tmp_path, names, outputs, words):
    file = tmp_path / "names.txt"
    file.write_text("\n".join(names) + "\n")
    with pytest.raises(tinynet.TinynetError, match=re.escape(words)):
        read_names(file, outputs)
    with pytest.raises(tinynet.TinynetError, match="cannot read labels file"):
        read_names(tmp_path / "missing.txt", outputs)
