"""Pickles built opcode by opcode that try to escape the .pth reader's checks (SECURITY.md, issue: security round 2).

- A state-dict value must come from the checked rebuild path: a tuple that merely looks like its result, with
  a negative or huge stride, would otherwise view memory before or after the storage (a crash, or bytes of
  the process copied into the weights).
- Nothing a file does changes state outside its own load: BUILD on an allowed global (a storage type, a
  rebuild function) must not alter the next, genuine load.
"""
import numpy as np
import pytest

import tinynet
from conftest import shared_path
from weight_files import checkpoint_zip, load_outcomes, op, tensor_opcodes

STORAGE_16_FLOATS = b"(" + op("storage") + b"ctorch\nFloatStorage\n" + op("0") + op("cpu") + op(16) + b"tQ"
BLOBS = {"0": np.arange(16, dtype="<f4").tobytes()}


def forged_view(offset, shape, stride):
    """Opcodes for the tuple ("tensor", storage, offset, shape, stride), built literally: no rebuild call."""
    return b"(" + op("tensor") + STORAGE_16_FLOATS + op(offset) + op(shape) + op(stride) + b"t"


@pytest.mark.parametrize("offset,shape,stride", [
    (15, (4, 4), (-1, -4)),          # walks back before the storage
    (0, (4,), (1 << 40,)),           # jumps far past its end
    (0, (2,), (1,)),                 # a harmless geometry: still not made by the rebuild function
])
def test_a_literal_tensor_tuple_is_not_a_tensor(tmp_path, offset, shape, stride):
    path = tmp_path / "forged.pth"
    path.write_bytes(checkpoint_zip({"features.0.0.weight": forged_view(offset, shape, stride)}, BLOBS))
    [outcome] = load_outcomes([path])
    assert outcome.startswith("error: ") and "no state dict of tensors" in outcome, outcome


@pytest.mark.parametrize("offset,shape,stride", [(15, (4, 4), (-1, -4)), (0, (4,), (1 << 40,)), (10, (7,), (1,))])
def test_a_rebuilt_view_outside_its_storage_is_refused(tmp_path, offset, shape, stride):
    path = tmp_path / "outside.pth"
    path.write_bytes(checkpoint_zip({"w": tensor_opcodes("0", 16, offset, shape, stride)}, BLOBS))
    [outcome] = load_outcomes([path])
    assert outcome.startswith("error: "), outcome


def build_on(global_opcodes, state_opcodes):
    """A dict entry whose value is ``global`` after BUILD(state) on it: the pickle tries to edit an allowed global."""
    return global_opcodes + state_opcodes + b"b"


DTYPE_TO_BYTES = b"}" + op("dtype") + op("uint8") + b"s"                 # BUILD with a __dict__ state
SLOT_DTYPE_TO_BYTES = b"(N}" + op("dtype") + op("uint8") + b"st"       # BUILD with (None, slot state)
FUNCTION_DEFAULTS = b"(N}" + op("__defaults__") + op((1, 2)) + b"st"


@pytest.mark.parametrize("target,state", [
    (b"ctorch\nFloatStorage\n", DTYPE_TO_BYTES),
    (b"ctorch\nFloatStorage\n", SLOT_DTYPE_TO_BYTES),
    (b"ctorch._utils\n_rebuild_tensor_v2\n", FUNCTION_DEFAULTS),
    (b"ccollections\nOrderedDict\n", SLOT_DTYPE_TO_BYTES),
], ids=["storage-type-dict-state", "storage-type-slot-state", "rebuild-function-defaults", "ordereddict"])
def test_a_refused_file_cannot_change_how_the_next_file_loads(tmp_path, target, state):
    golden = shared_path("golden", "tv_mobilenet_v3_small.pth")
    x = np.load(shared_path("golden", "tv_mobilenet_v3_small.input.npy")).transpose(0, 2, 3, 1)
    expected = np.load(shared_path("golden", "tv_mobilenet_v3_small.logits_f64.npy"))
    hostile = tmp_path / "mutator.pth"
    hostile.write_bytes(checkpoint_zip({"w": tensor_opcodes("0", 16, 0, (16,), (1,)),
                                        "x": build_on(target, state)}, BLOBS))
    with pytest.raises(tinynet.WeightsError):
        tinynet.load(hostile)  # in this process, on purpose: the genuine load below must not see its effects
    logits = tinynet.load(golden).forward(np.ascontiguousarray(x, np.float32))
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_a_huge_memo_index_is_refused_before_the_unpickler_grows_its_table(tmp_path):
    path = tmp_path / "memo.pth"
    huge_put = b"N" + b"r" + (2 ** 31).to_bytes(4, "little") + b"0"  # LONG_BINPUT 2**31 on None, then POP
    path.write_bytes(checkpoint_zip({"w": huge_put + tensor_opcodes("0", 16, 0, (16,), (1,))}, BLOBS))
    [outcome] = load_outcomes([path])
    assert outcome.startswith("error: ") and "memo index" in outcome, outcome


@pytest.mark.parametrize("method", ["ZIP_BZIP2", "ZIP_LZMA"])
def test_members_compressed_without_a_bounded_inflate_are_refused(tmp_path, method):
    import zipfile
    path = tmp_path / "bomb.pth"
    path.write_bytes(checkpoint_zip({"w": tensor_opcodes("0", 16, 0, (16,), (1,))}, BLOBS,
                                    compression=getattr(zipfile, method)))
    [outcome] = load_outcomes([path])
    assert outcome.startswith("error: ") and "compression method" in outcome, outcome
