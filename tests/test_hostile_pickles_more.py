"""Hostile .pth pickles built opcode by opcode: forged tensors, views outside their storage, and files that
try to modify the unpickler's allowed globals (which must not change any later load)."""
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import tinynet
from conftest import shared_path
from tinynet.formats import torch_zip


def unicode(text):
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def integer(value):
    if -(1 << 31) <= value < 1 << 31:
        return b"J" + struct.pack("<i", value)
    data = value.to_bytes(16, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data  # LONG1


def int_tuple(values):
    return b"(" + b"".join(integer(v) for v in values) + b"t"


def global_(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def storage(key="0", numel=4):
    """A persistent id for one FloatStorage, as torch.save writes it."""
    return b"(" + unicode("storage") + global_("torch", "FloatStorage") + unicode(key) + unicode("cpu") + integer(numel) + b"tQ"


def rebuilt_tensor(offset, shape, stride):
    """A tensor through the genuine path: torch._utils._rebuild_tensor_v2(storage, offset, shape, stride)."""
    return (global_("torch._utils", "_rebuild_tensor_v2") + b"(" + storage() + integer(offset)
            + int_tuple(shape) + int_tuple(stride) + b"tR")


def state_pickle(value, prelude=b""):
    """{"w": value}, after `prelude` (whose result is popped)."""
    return b"\x80\x02" + prelude + b"}" + unicode("w") + value + b"s."


def write_checkpoint(path, pickle_bytes, blob=np.arange(4, dtype="<f4").tobytes()):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle_bytes)
        archive.writestr("archive/data/0", blob)
    return path


# Reads a checkpoint in a child interpreter under a 1 GB address-space limit: an out-of-bounds view that reads
# the process's memory segfaults there (or copies bytes), and must fail this test instead of killing pytest.
CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
import tinynet
from tinynet.formats import torch_zip
try:
    torch_zip.read(sys.argv[1])
except tinynet.WeightsError as e:
    print("refused:", e)
else:
    print("loaded")
"""


def read_in_child(path):
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"child died with {done.returncode}: {done.stderr[-500:]}"
    return done.stdout


def test_the_builders_make_a_loadable_checkpoint(tmp_path):
    """The opcodes below are right: through the rebuild function they give the expected tensor."""
    path = write_checkpoint(tmp_path / "ok.pth", state_pickle(rebuilt_tensor(1, (3,), (1,))))
    np.testing.assert_array_equal(torch_zip.read(path)["w"], [1, 2, 3])


@pytest.mark.parametrize("offset,shape,stride", [(-1000, (4,), (1,)), (0, (4,), (-100000,)), (3, (4,), (1,)),
                                                 (0, (2, 2), (1 << 40, 1)), (1 << 20, (1,), (1,))])
def test_a_literal_tensor_tuple_is_not_a_tensor(tmp_path, offset, shape, stride):
    """("tensor", storage, offset, shape, stride) built by the pickle itself, never calling the rebuild function."""
    forged = b"(" + unicode("tensor") + storage() + integer(offset) + int_tuple(shape) + int_tuple(stride) + b"t"
    path = write_checkpoint(tmp_path / "forged.pth", state_pickle(forged))
    assert read_in_child(path).startswith("refused: ")


@pytest.mark.parametrize("offset,shape,stride", [(-1, (4,), (1,)), (0, (4,), (-1,)), (1, (4,), (1,)),
                                                 (0, (2, 3), (3, 1)), (5, (0,), (1,))])
def test_a_rebuilt_view_outside_its_storage_is_refused(tmp_path, offset, shape, stride):
    path = write_checkpoint(tmp_path / "view.pth", state_pickle(rebuilt_tensor(offset, shape, stride)))
    assert read_in_child(path).startswith("refused: ")


def slot_build(attribute, value):
    """BUILD with (None, {attribute: value}): setattr on the object on top of the stack."""
    return b"(N}" + unicode(attribute) + value + b"stb"


@pytest.mark.parametrize("target,attribute", [
    (global_("torch", "FloatStorage"), "dtype"),
    (global_("torch._utils", "_rebuild_tensor_v2"), "__defaults__"),
    (global_("torch._utils", "_rebuild_tensor_v2"), "function"),
    (global_("collections", "OrderedDict"), "fromkeys"),
    (storage(), "numel"),
    (rebuilt_tensor(0, (4,), (1,)), "stride"),
])
def test_building_on_an_allowed_object_is_refused_and_changes_nothing(tmp_path, target, attribute):
    golden = shared_path("golden", "tv_mobilenet_v2.pth")
    before = torch_zip.read(golden)
    hostile = state_pickle(rebuilt_tensor(0, (4,), (1,)), prelude=target + slot_build(attribute, int_tuple([-1])) + b"0")
    with pytest.raises(tinynet.WeightsError):
        torch_zip.read(write_checkpoint(tmp_path / "build.pth", hostile))
    dict_build = target + b"}" + unicode(attribute) + integer(0) + b"sb0"
    with pytest.raises(tinynet.WeightsError):
        torch_zip.read(write_checkpoint(tmp_path / "dict.pth", state_pickle(rebuilt_tensor(0, (4,), (1,)), dict_build)))
    after = torch_zip.read(golden)
    assert before.keys() == after.keys()
    for name in before:
        assert before[name].dtype == after[name].dtype
        np.testing.assert_array_equal(before[name], after[name])
