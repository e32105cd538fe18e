"""Tiny files that would make tinynet allocate or write gigabytes (issue 10, class 3): each is refused with a
named error, inside the memory promise, leaving nothing behind (tests/hostile.py checks all of that in a
memory-limited child). Every file is built here, in code, and is under 10 MB; without its protection each
case peaks above 1 GB of memory, writes past the file-size limit or gives another message.
"""
import bz2
import io
import zipfile
import zlib

import numpy as np
import pytest

from conftest import shared_path
from hostile import check, expect_refused, feed
from tinynet.formats.tflite_builder import Builder
from weight_files import checkpoint_zip, op, tensor_opcodes, torchvision_state

from tinynet.errors import UnsupportedModelError, WeightsError

ZEROS = bytes(16 << 20)
GB = 1 << 30

# ---- tar archives ---------------------------------------------------------------------------------------


def tar_header(name, size, kind, gnu=True, fields=None):
    """One 512-byte tar header (GNU magic unless ``gnu`` is false), with a valid checksum; ``fields`` =
    {offset: bytes} sets other parts (a GNU sparse map)."""
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108], h[108:116], h[116:124] = b"0000644\0", b"0000000\0", b"0000000\0"
    h[124:136], h[136:148] = b"%011o\0" % size, b"%011o\0" % 0
    h[156:157] = kind
    h[257:265] = b"ustar  \0" if gnu else b"ustar\x0000"
    for offset, value in (fields or {}).items():
        h[offset:offset + len(value)] = value
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def compressed(kind, parts):
    """``parts`` (bytes, or ZEROS repeated) compressed as concatenated streams: multi-stream gzip and bzip2
    files are valid, and compressing 16 MB of zeros once stands for a gigabyte."""
    cache = {}
    out = []
    for part in parts:
        if id(part) not in cache:
            cache[id(part)] = gzip_bytes(part) if kind == "gz" else bz2.compress(part, 9)
        out.append(cache[id(part)])
    return b"".join(out)


def gzip_bytes(data):
    c = zlib.compressobj(9, wbits=31)
    return c.compress(data) + c.flush()


def long_name_archive(kind, declared=GB + (16 << 20)):
    """A GNU long-name header ('L') declaring ``declared`` bytes of name, which follow as zeros: tarfile reads
    the whole name in one read (inside tarfile.is_tarfile, on every imported file)."""
    zeros = -(-declared // len(ZEROS))
    return compressed(kind, [tar_header(b"././@LongLink", declared, b"L")] + [ZEROS] * zeros)


def test_a_compressed_long_name_header_is_not_read_whole(tmp_path):
    gz, bz = tmp_path / "longname.tgz", tmp_path / "longname.tar.bz2"
    gz.write_bytes(long_name_archive("gz"))
    bz.write_bytes(long_name_archive("bz2"))
    assert gz.stat().st_size < 10 << 20 and bz.stat().st_size < 10 << 20
    outcomes, _ = feed([gz, bz], action="import")
    check(outcomes[0], WeightsError, r"long name or pax header of \d+ bytes")
    check(outcomes[1], WeightsError, "not a weight file")  # bzip2 archives are not read at all


def test_a_gnu_sparse_member_is_refused(tmp_path):
    real_size = GB + GB // 2  # tarfile would write all of it, zeros, into the store's work folder
    sparse_map = {386: b"%011o\0" % (real_size - 512) + b"%011o\0" % 512, 483: b"%011o\0" % real_size}
    path = tmp_path / "sparse.tgz"
    path.write_bytes(gzip_bytes(tar_header(b"model.tflite", 512, b"S", fields=sparse_map) + bytes(512 + 1024)))
    expect_refused([path], WeightsError, "model.tflite' is a GNU sparse file", action="import")


def test_a_member_that_expands_past_the_budget_is_refused_before_it_is_read(tmp_path):
    size = GB + GB // 4
    path = tmp_path / "bomb.tgz"
    path.write_bytes(compressed("gz", [tar_header(b"model.tflite", size, b"0")] + [ZEROS] * (size // len(ZEROS))
                                + [bytes(1024)]))
    expect_refused([path], WeightsError, r"expands to more than \d+ bytes", action="import")


@pytest.mark.parametrize("kind,name", [(b"x", b"././@PaxHeader"), (b"K", b"././@LongLink")])
def test_pax_and_long_link_headers_are_bounded(tmp_path, kind, name):
    path = tmp_path / "header.tgz"
    size = GB + (16 << 20)
    path.write_bytes(compressed("gz", [tar_header(name, size, kind)] + [ZEROS] * (size // len(ZEROS))))
    expect_refused([path], WeightsError, "long name or pax header", action="import")


def test_devices_and_unknown_members_are_refused_or_skipped(tmp_path):
    fifo, unknown = tmp_path / "fifo.tgz", tmp_path / "unknown.tgz"
    fifo.write_bytes(gzip_bytes(tar_header(b"model.tflite", 0, b"6") + bytes(1024)))
    unknown.write_bytes(gzip_bytes(tar_header(b"model.tflite", 0, b"Q") + bytes(1024)))
    outcomes, _ = feed([fifo, unknown], action="import")
    check(outcomes[0], WeightsError, "found no .tflite file")  # skipped, never created
    check(outcomes[1], WeightsError, "of unknown type")


# ---- TFLite ---------------------------------------------------------------------------------------------


class Flat:
    """Hand-built TFLite files whose vectors may repeat one table: 4 bytes of file per entry."""

    def __init__(self):
        self.b = Builder()
        self.buffers = [self.b.table({})]

    def buffer(self, data):
        self.buffers.append(self.b.table({0: ("ref", self.b.bytes_vector(data))}))
        return len(self.buffers) - 1

    def tensor(self, shape=(1,), dtype=0, buffer=0, name="t", shape_ref=None, name_ref=None):
        b = self.b
        return b.table({0: ("ref", shape_ref or b.vector(shape, "i")), 1: ("b", dtype), 2: ("I", buffer),
                        3: ("ref", name_ref or b.string(name))})

    def operator(self, code, inputs, outputs):
        return self.b.table({0: ("I", code), 1: ("ref", self.b.vector(inputs, "i")),
                             2: ("ref", self.b.vector(outputs, "i"))})

    def finish(self, tensors, operators=(), opcodes=(), inputs=(), outputs=()):
        b = self.b
        codes = [b.table({0: ("b", c), 3: ("i", c)}) for c in opcodes]
        subgraph = b.table({0: ("ref", b.offsets(tensors)), 1: ("ref", b.vector(inputs, "i")),
                            2: ("ref", b.vector(outputs, "i")), 3: ("ref", b.offsets(operators))})
        model = b.table({0: ("I", 3), 1: ("ref", b.offsets(codes)), 2: ("ref", b.offsets([subgraph])),
                         4: ("ref", b.offsets(self.buffers))})
        return b.finish(model)


DEQUANTIZE, FLOAT16 = 6, 1
MILLION_HALFS = np.ones(1 << 20, np.float16).tobytes()  # 2 MB of file; 8 MB as float64


def million_tensor_entries():
    f = Flat()
    one = f.tensor()
    return f.finish([one] * 2_000_000, inputs=[0], outputs=[0])


def one_long_name_for_many_tensors():
    f = Flat()
    one = f.tensor(name_ref=f.b.string("n" * (4 << 20)))
    return f.finish([one] * 5_000, inputs=[0], outputs=[0])


def one_huge_shape_for_many_tensors():
    f = Flat()
    one = f.tensor(shape_ref=f.b.vector([1] * 2_000_000, "i"))
    return f.finish([one] * 1_000, inputs=[0], outputs=[0])


def many_dequantize_ops_over_one_constant(ops=400):
    """One float16 constant (tensor 0) and ``ops`` DEQUANTIZE operators reading it: each made a float64 copy."""
    f = Flat()
    constant = f.tensor((1 << 20,), FLOAT16, f.buffer(MILLION_HALFS))
    output = f.tensor((1 << 20,))
    tensors = [constant] + [output] * ops
    operators = [f.operator(0, [0], [1 + i]) for i in range(ops)]
    return f.finish(tensors, operators, [DEQUANTIZE])


def many_tensors_on_one_buffer(ops=400):
    """``ops`` constant tensors that all name one 2 MB buffer, each dequantized by its own operator."""
    f = Flat()
    constant = f.tensor((1 << 20,), FLOAT16, f.buffer(MILLION_HALFS))
    output = f.tensor((1 << 20,))
    tensors = [constant] * ops + [output] * ops
    operators = [f.operator(0, [i], [ops + i]) for i in range(ops)]
    return f.finish(tensors, operators, [DEQUANTIZE])


def huge_declared_input():
    from test_tflite import v1_graph
    return v1_graph("per-tensor", size=2 ** 31 - 1, classes=4)[0]


TFLITE_CASES = [
    (million_tensor_entries, WeightsError, "tensors has 2000000 entries; at most 20000"),
    (one_long_name_for_many_tensors, UnsupportedModelError, "input tensor 0 'nnnn"),  # names cut, graph refused
    (one_huge_shape_for_many_tensors, WeightsError, "has 2000000 dimensions; at most 8"),
    (many_dequantize_ops_over_one_constant, UnsupportedModelError, "inputs"),  # one float64 copy, not 400
    (many_tensors_on_one_buffer, WeightsError, "dequantize to more than 16 times the file's size"),
    (huge_declared_input, WeightsError, "preprocess size must be a whole number from 1 to 2048"),
]


@pytest.mark.parametrize("build,error,message", TFLITE_CASES, ids=[c[0].__name__ for c in TFLITE_CASES])
def test_a_tflite_file_cannot_make_the_reader_allocate_past_its_budget(tmp_path, build, error, message):
    path = tmp_path / "hostile.tflite"
    path.write_bytes(build())
    assert path.stat().st_size < 10 << 20
    expect_refused([path], error, message)


# ---- torch zip ------------------------------------------------------------------------------------------


def many_views_of_one_storage(views=1000):
    """One 1 MB storage and ``views`` tensors that each view all of it: each was copied out in full."""
    entries = {f"w{i}": tensor_opcodes("0", 1 << 18, 0, (1 << 18,), (1,)) for i in range(views)}
    return checkpoint_zip(entries, {"0": bytes(1 << 20)})


def deflated_storage_bomb():
    """A 1.25 GB uint8 storage, deflated about 500:1 (inside the ratio zip members may have) to 2.5 MB."""
    size = GB + GB // 4
    pkl = b"\x80\x02}(" + op("features.0.0.weight") + tensor_opcodes("0", size, 0, (size,), (1,), "ByteStorage") + b"u."
    chunk = ZEROS[:-(16 << 10)] + np.random.default_rng(0).bytes(16 << 10)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        member = zipfile.ZipInfo("archive/data/0")
        member.compress_type = zipfile.ZIP_DEFLATED
        with z.open(member, "w", force_zip64=True) as f:
            for _ in range(size // len(chunk)):
                f.write(chunk)
    return out.getvalue()


def uint8_tensor_of_a_wrong_shape():
    """A torchvision state dict whose stem weight is 8 MB of uint8 (a float64 64 MB, converted before its
    shape was checked) of a shape no conv has, stored like torch.save does."""
    state = torchvision_state()
    entries = {name: tensor_opcodes(str(i), a.size, 0, a.shape, tuple(s // a.itemsize for s in a.strides))
               for i, (name, a) in enumerate(state.items()) if name != "features.0.0.weight"}
    blobs = {str(i): a.astype("<f4").tobytes() for i, (name, a) in enumerate(state.items())}
    entries["features.0.0.weight"] = tensor_opcodes("0", 8 << 20, 0, (8 << 20,), (1,), storage="ByteStorage")
    blobs["0"] = bytes(8 << 20)
    return checkpoint_zip(entries, blobs)


def pickle_of(megabytes):
    """A checkpoint whose data.pkl is ``megabytes`` MB of EMPTY_DICT and EMPTY_TUPLE opcodes at random (a new
    64-byte dict for every other byte), deflated about 8:1."""
    body = np.where(np.random.default_rng(0).random(megabytes << 20) < 0.5, ord("}"), ord(")")).astype(np.uint8)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02(" + body.tobytes() + b"l.")
    return out.getvalue()


def pickle_of_60_mb():
    return pickle_of(60)


def pickle_of_15_mb():
    return pickle_of(15)


TORCH_CASES = [
    (many_views_of_one_storage, WeightsError, r"tensors add up to more than \d+ bytes"),
    (deflated_storage_bomb, WeightsError, r"tensors add up to more than \d+ bytes"),
    (uint8_tensor_of_a_wrong_shape, WeightsError, r"features\.0\.0\.weight has shape \(8388608,\)"),
    (pickle_of_60_mb, WeightsError, r"data\.pkl declares \d+ bytes, more than a state dict needs"),
    (pickle_of_15_mb, WeightsError, "more than 1000000 opcodes"),
]


@pytest.mark.parametrize("build,error,message", TORCH_CASES, ids=[c[0].__name__ for c in TORCH_CASES])
def test_a_checkpoint_cannot_make_the_reader_allocate_past_its_budget(tmp_path, build, error, message):
    path = tmp_path / "hostile.pth"
    path.write_bytes(build())
    assert path.stat().st_size < 10 << 20
    expect_refused([path], error, message)


def test_a_tensor_is_checked_before_it_is_converted_to_float64():
    from tinynet.formats.fold import Source, fold
    huge = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=(1 << 40,), strides=(0,))  # 1 TB as float64
    with pytest.raises(WeightsError, match="has shape .1099511627776,., which is not a conv weight"):
        fold({"w": huge}, [Source("00.conv", "conv", "w")], 1e-5)
    small = np.zeros((4, 3, 3, 3), np.float32)
    with pytest.raises(WeightsError, match=r"tensor bn.weight has shape \(1099511627776,\), expected \(4,\)"):
        fold({"w": small, "bn.weight": huge, "bn.bias": huge, "bn.running_mean": huge, "bn.running_var": huge},
             [Source("00.conv", "conv", "w", bn="bn")], 1e-5)


# ---- Keras .h5 --------------------------------------------------------------------------------------------


def test_an_h5_dataset_cannot_expand_past_the_files_budget(tmp_path):
    h5py = pytest.importorskip("h5py", reason="reading .h5 files needs h5py (the keras extra)")
    path = tmp_path / "bomb.h5"
    count = 100 << 20  # 400 MB of float32, 800 MB as float64, deflated about 500:1 to under 1 MB
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"conv1"]
        group = f.create_group("conv1")
        group.attrs["weight_names"] = [b"conv1/kernel:0"]
        data = group.create_dataset("conv1/kernel:0", (count,), np.float32, chunks=(1 << 20,), compression="gzip")
        chunk = np.zeros(1 << 20, np.float32)
        chunk[::512] = np.random.default_rng(0).random(len(chunk[::512]))
        for start in range(0, count, len(chunk)):
            data[start:start + len(chunk)] = chunk
    assert path.stat().st_size < 10 << 20
    expect_refused([path], WeightsError, r"declares \d+ bytes \(\d+ stored\): more than a MobileNet's weights")


# ---- a long-lived process ------------------------------------------------------------------------------

GOLDEN_CHECK = """
import numpy as np
x = np.load({input!r}).transpose(0, 2, 3, 1)
expected = np.load({logits!r})
logits = tinynet.load({golden!r}).forward(np.ascontiguousarray(x, np.float32))
error = float(np.abs(logits - expected).max() / np.abs(expected).max())
print("golden", "ok" if error < 1e-4 else f"off by {{error}}", peak())
"""


def test_a_process_fed_hostile_files_still_loads_a_genuine_checkpoint(tmp_path):
    golden = shared_path("golden", "tv_mobilenet_v3_small.pth")
    files = []
    for build, _error, _message in TFLITE_CASES + TORCH_CASES:
        suffix = ".pth" if (build, _error, _message) in TORCH_CASES else ".tflite"
        files.append(tmp_path / f"{build.__name__}{suffix}")
        files[-1].write_bytes(build())
    files.append(tmp_path / "longname.tgz")
    files[-1].write_bytes(long_name_archive("gz"))
    after = GOLDEN_CHECK.format(input=str(shared_path("golden", "tv_mobilenet_v3_small.input.npy")),
                                logits=str(shared_path("golden", "tv_mobilenet_v3_small.logits_f64.npy")),
                                golden=str(golden))
    outcomes, output = feed(files, action="import", after=after)
    for path, outcome in zip(files, outcomes):
        assert outcome.status == "refused" and outcome.peak_rss < GB, f"{path.name}: {outcome}"
    verdict = output.split()
    assert verdict[:2] == ["golden", "ok"], output
    assert int(verdict[2]) < GB, f"peak RSS {int(verdict[2]) >> 20} MB"
