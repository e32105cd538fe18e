"""The integer GEMM on Intel AMX tiles: 16 rows x up to 64 output channels per step.

A tile register holds 16 rows of 64 bytes; ``tdpbusd`` multiplies a 16x64 uint8 tile of activations (16 rows, 64
input channels) by a 16x64 int8 tile of weights (16 groups of 4 input channels, 16 output channels of 4 bytes:
one 16-channel slice of kernels.int8_gemm's (groups, NR, 4) panel, read with the panel's row stride NR*4) into a
16x16 int32 tile: 16384 multiply-adds per instruction, where VNNI's vpdpbusd does 64. "u8" weights (uint8
graphs, u = w + c) go by ``tdpbuud`` (both operands unsigned: the activations need no flip, unlike the VNNI tiles),
and c times each row's activation sum is subtracted as the tile is stored. This is what LiteRT's
XNNPACK runs for int8 graphs on CPUs that have it (its "16x64c4__avx512amx" GEMMs), and why it is twice as fast
on them as on uint8 graphs.

One step: C tiles tmm0..tmm{nv-1} zeroed; for each 64 input channels, the activations into tmm4 and the weights
of each 16 output channels into tmm5-7 in turn, one tdpbusd per C tile; then the C tiles stored to a stack
buffer and requantized row by row in vector registers (kernels.int8_gemm_tile.requantizer, the same output step
as the VNNI tiles), bias added first. The weights' K is padded to a multiple of 64 with zeros (``AMX_GROUPS``
groups of 4; pack_gemm_s8), so the activation bytes past K that a tile row reads are multiplied by 0: rows may be
read in place as long as the tile's last row ends inside the array (kernels.int8_gemm copies the others).

The tile configuration (every tile 16 rows of 64 bytes) is loaded once per run of steps (``amx_configure``) and
released after (``amx_release``): it is per thread. Linux lets a process use the tile registers only after asking
(arch_prctl ARCH_REQ_XCOMP_PERM), done at import; ``AMX_INSTRUCTIONS`` is False when the compile target
(kernels.vector_width.target_has) or the kernel says no, or TINYNET_INT8_DOT is "vnni" or "widen"
(kernels.int8_gemm_tile). Then kernels.int8_gemm never takes the AMX branch, and these intrinsics emit no tile
instruction at all (amx_step a trap): LLVM aborts the whole process on an instruction its target lacks, even on a
branch that never runs.
"""
import ctypes
import os
import platform

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .int8_gemm_tile import REQUANT_TYPES, VI32, VOUT, requantizer
from .simd import I32, I64, LANES, MASK, const, data, declare, lane_mask, splat
from .vector_width import target_has

AMX_ROWS = 16  # rows per tile
AMX_GROUPS = 16  # groups of 4 input channels per step: 64 bytes, one tile row
ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA, SYS_ARCH_PRCTL = 0x1023, 18, 158


def _tiles_permitted():
    """Ask Linux for the tile registers (their state is 8 KB per thread beyond what XSAVE saves by default)."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0
    except (OSError, AttributeError):
        return False


AMX_INSTRUCTIONS = (target_has("amx-int8") and target_has("amx-tile")
                    and os.environ.get("TINYNET_INT8_DOT", "") not in ("vnni", "widen") and _tiles_permitted())

I8 = ir.IntType(8)
BYTES = I8.as_pointer()
C_TILES, A_TILE, B_TILES = (0, 1, 2, 3), 4, (5, 6, 7)


def _tile_config():
    """The 64-byte LDTILECFG operand: palette 1, tiles 0-7 all 16 rows of 64 bytes."""
    config = [0] * 64
    config[0] = 1
    for t in range(8):
        config[16 + 2 * t] = 64  # colsb[t], little-endian uint16
        config[48 + t] = AMX_ROWS
    return config


def _call(builder, name, *args):
    return builder.call(declare(builder, name, ir.VoidType(), [a.type for a in args]), list(args))


def _imm(value):
    return ir.Constant(I8, value)


@intrinsic
def amx_configure(typingctx):
    """Load the tile configuration of this module's steps on the calling thread."""
    def codegen(context, builder, signature, args):
        if not AMX_INSTRUCTIONS:
            return context.get_dummy_value()
        module = builder.module
        try:
            config = module.get_global("tinynet_amx_tile_config")
        except KeyError:
            typ = ir.ArrayType(I8, 64)
            config = ir.GlobalVariable(module, typ, "tinynet_amx_tile_config")
            config.initializer = ir.Constant(typ, _tile_config())
            config.global_constant = True
            config.linkage = "internal"
            config.align = 64
        _call(builder, "llvm.x86.ldtilecfg", builder.bitcast(config, BYTES))
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def amx_release(typingctx):
    """Release the tile registers of the calling thread (the OS then saves no tile state for it)."""
    def codegen(context, builder, signature, args):
        if AMX_INSTRUCTIONS:
            _call(builder, "llvm.x86.tilerelease")
        return context.get_dummy_value()

    return types.void(), codegen


AMX_STEP_ARGS = ("x", "x_off", "ldx", "steps", "w", "w_off", "b", "b_off", "sums", "s_off", "rq", "c_off", "out",
                 "o_off", "ldo", "rows", "cols")


def _emit_step(context, builder, nv, kind, args, array_types):
    """IR of one amx_step for a panel of nv*16 channels of ``kind`` ("s8" or "u8") weights."""
    nr = nv * LANES
    value, typ = dict(zip(AMX_STEP_ARGS, args)), dict(zip(AMX_STEP_ARGS, array_types))
    x_off, ldx, steps, w_off, b_off, s_off, c_off, o_off, ldo, rows, cols = (value[n] for n in (
        "x_off", "ldx", "steps", "w_off", "b_off", "s_off", "c_off", "o_off", "ldo", "rows", "cols"))
    psums = data(context, builder, typ["sums"], value["sums"])
    dot = "llvm.x86.tdpbusd" if kind == "s8" else "llvm.x86.tdpbuud"
    px, pw, po = (builder.bitcast(data(context, builder, typ[n], value[n]), BYTES) for n in ("x", "w", "out"))
    pb = data(context, builder, typ["b"], value["b"])
    w_stride = const(nr * 4)  # bytes from one group of 4 input channels to the next

    for t in range(nv):
        _call(builder, "llvm.x86.tilezero", _imm(C_TILES[t]))
    entry = builder.block
    loop = builder.append_basic_block("amx.k")
    done = builder.append_basic_block("amx.done")
    builder.cbranch(builder.icmp_signed(">", steps, const(0)), loop, done)
    builder.position_at_end(loop)
    s = builder.phi(I64)
    s.add_incoming(const(0), entry)
    a_ptr = builder.gep(px, [builder.add(x_off, builder.mul(s, const(4 * AMX_GROUPS)))])
    _call(builder, "llvm.x86.tileloadd64", _imm(A_TILE), a_ptr, ldx)
    w_step = builder.add(w_off, builder.mul(s, const(AMX_GROUPS * nr * 4)))
    for t in range(nv):
        b_tile = _imm(B_TILES[t % len(B_TILES)])
        _call(builder, "llvm.x86.tileloadd64", b_tile, builder.gep(pw, [builder.add(w_step, const(t * LANES * 4))]),
              w_stride)
        _call(builder, dot, _imm(C_TILES[t]), _imm(A_TILE), b_tile)
    s_next = builder.add(s, const(1))
    s.add_incoming(s_next, builder.block)
    builder.cbranch(builder.icmp_signed("<", s_next, steps), loop, done)
    builder.position_at_end(done)

    # The sums to a stack buffer (16 rows of 16 int32 per C tile), then requantized row by row.
    with builder.goto_entry_block():
        sums = builder.alloca(ir.ArrayType(VI32, AMX_ROWS * nv))
        sums.align = 64
    sums_bytes = builder.bitcast(sums, BYTES)
    for t in range(nv):
        _call(builder, "llvm.x86.tilestored64", _imm(C_TILES[t]),
              builder.gep(sums_bytes, [const(t * AMX_ROWS * LANES * 4)]), const(LANES * 4))
    vectors = builder.bitcast(sums, VI32.as_pointer())
    biases = [builder.load(builder.gep(pb, [builder.add(b_off, const(t * LANES))]), typ=VI32, align=4)
              for t in range(nv)]
    requantize = requantizer(context, builder, typ["rq"], value["rq"])
    masks = [lane_mask(builder, builder.sub(cols, const(t * LANES))) for t in range(nv)]
    store = declare(builder, f"llvm.masked.store.v{LANES}i8.p0", ir.VoidType(), [VOUT, BYTES, I32, MASK])

    before = builder.block
    row_loop = builder.append_basic_block("amx.rows")
    rows_done = builder.append_basic_block("amx.rows.done")
    builder.cbranch(builder.icmp_signed(">", rows, const(0)), row_loop, rows_done)
    builder.position_at_end(row_loop)
    r = builder.phi(I64)
    r.add_incoming(const(0), before)
    o_row = builder.add(o_off, builder.mul(r, ldo))
    if kind == "u8":  # sum x*u = sum x*w + c * (the row's activation sum)
        row_sum = splat(builder, builder.load(builder.gep(psums, [builder.add(s_off, r)]), typ=I32), VI32)
    for t in range(nv):
        acc = builder.load(builder.gep(vectors, [builder.add(const(t * AMX_ROWS), r)]), typ=VI32, align=64)
        if kind == "u8":
            acc = builder.sub(acc, row_sum)
        y = builder.trunc(requantize(builder.add(acc, biases[t]), builder.add(c_off, const(t * LANES))), VOUT)
        builder.call(store, [y, builder.gep(po, [builder.add(o_row, const(t * LANES))]), ir.Constant(I32, 1),
                             masks[t]])
    r_next = builder.add(r, const(1))
    r.add_incoming(r_next, builder.block)
    builder.cbranch(builder.icmp_signed("<", r_next, rows), row_loop, rows_done)
    builder.position_at_end(rows_done)


@intrinsic
def amx_step(typingctx, nr, x, x_off, ldx, steps, w, w_off, b, b_off, sums, s_off, rq, c_off, out, o_off, ldo, rows,
             cols):
    """16 rows x ``nr`` output channels (nr in PANEL_WIDTHS) of a panel, between amx_configure and amx_release;
    offsets in elements (bytes for x, w and out):

    x, x_off, ldx       uint8 activations: 16 rows of steps*64 bytes from x_off, ldx apart, all inside x
    steps               input channels / 64, rounded up (the panel's groups / AMX_GROUPS)
    w, w_off            the panel's packed weights (kernels.int8_gemm: int8 "s8", tdpbusd, or uint8 "u8", tdpbuud)
    b, b_off            the panel's AMX bias (nr int32 values) from b_off
    sums, s_off         c times row r's activation sum at s_off + r (read for "u8" weights only)
    rq, c_off           requantization (kernels.int8_requant), the panel's first channel c_off
    out, o_off, ldo     uint8 output row r at o_off + r*ldo
    rows, cols          rows (<= 16) and columns (<= nr) stored
    """
    kind = {types.int8: "s8", types.uint8: "u8"}.get(w.dtype)
    if kind is None or not isinstance(rq, types.BaseNamedTuple) or rq.instance_class not in REQUANT_TYPES:
        return None
    i = types.intp
    sig = types.void(i, x, i, i, i, w, i, b, i, sums, i, rq, i, out, i, i, i, i)

    def codegen(context, builder, signature, args):
        if not AMX_INSTRUCTIONS:  # never called then (kernels.int8_gemm.runs_on_amx)
            _call(builder, "llvm.trap")
            return context.get_dummy_value()
        after = builder.append_basic_block("amx.end")
        switch = builder.switch(args[0], after)  # one IR variant per panel width
        for nv in range(1, 5):
            block = builder.append_basic_block(f"amx.{nv * LANES}")
            switch.add_case(const(nv * LANES), block)
            builder.position_at_end(block)
            _emit_step(context, builder, nv, kind, args[1:], signature.args[1:])
            builder.branch(after)
        builder.position_at_end(after)
        return context.get_dummy_value()

    return sig, codegen
