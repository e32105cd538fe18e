"""LLVM IR building blocks for kernels written with explicit <16 x float> vectors (Numba intrinsics).

Numba leaves vectorisation to LLVM's loop and SLP vectorisers, which will not keep a block of
accumulators in registers across a loop (../shared/notes/numba-lab.md section 2). The register-tiled
kernels (kernels.gemm_tile, kernels.depthwise_tile) therefore emit their inner loops as IR through
``numba.extending.intrinsic``, with the helpers here. The IR is generic LLVM: on a CPU without
AVX-512, LLVM splits each 16-lane vector into narrower ones (correct, but the tiles then spill).

Numba's on-disk cache keys a kernel to its own source file only: after editing this file (or any
other module a kernel calls into), clear the cache (``__pycache__/*.nbi`` beside kernels/, or
NUMBA_CACHE_DIR), or the kernels keep the old code.
"""
import numpy as np
from llvmlite import ir

from .activation import HSIGMOID, HSWISH, NONE, RELU, RELU6

LANES = 16  # float32 lanes of one vector: one AVX-512 register

F32 = ir.FloatType()
I32 = ir.IntType(32)
I64 = ir.IntType(64)
VEC = ir.VectorType(F32, LANES)
MASK = ir.VectorType(ir.IntType(1), LANES)
ALIGN = ir.Constant(I32, 4)  # element alignment: activation rows start anywhere


def const(value):
    """An i64 constant."""
    return ir.Constant(I64, value)


def vconst(value):
    """A float vector with every lane ``value``."""
    return ir.Constant(VEC, [float(np.float32(value))] * LANES)


def declare(builder, name, ret, args):
    """The LLVM intrinsic (or function) ``name`` in the module being built."""
    try:
        return builder.module.get_global(name)
    except KeyError:
        return ir.Function(builder.module, ir.FunctionType(ret, args), name)


def data(context, builder, array_type, array):
    """Pointer to the first element of a Numba array value (float* for float32 arrays)."""
    return context.make_array(array_type)(context, builder, array).data


def splat(builder, value, vector_type=VEC):
    """``value`` in every lane of a ``vector_type``."""
    undefined = ir.Constant(vector_type, ir.Undefined)
    one = builder.insert_element(undefined, value, ir.Constant(I32, 0))
    return builder.shuffle_vector(one, undefined, ir.Constant(ir.VectorType(I32, LANES), [0] * LANES))


def lane_mask(builder, count):
    """Mask of the first ``count`` lanes (i64 value; all lanes when count >= LANES, none when <= 0)."""
    lanes = ir.Constant(ir.VectorType(I64, LANES), list(range(LANES)))
    return builder.icmp_signed("<", lanes, splat(builder, count, lanes.type))


def load(builder, base, offset, mask=None):
    """The vector at ``base + offset`` (floats); with ``mask``, only those lanes (the others read as 0, not touched)."""
    ptr = builder.gep(base, [offset])
    if mask is None:
        return builder.load(ptr, typ=VEC, align=4)
    masked_load = declare(builder, f"llvm.masked.load.v{LANES}f32.p0", VEC, [F32.as_pointer(), I32, MASK, VEC])
    return builder.call(masked_load, [ptr, ALIGN, mask, vconst(0.0)])


def store(builder, value, base, offset, mask=None):
    """Store ``value`` at ``base + offset``; with ``mask``, only those lanes."""
    ptr = builder.gep(base, [offset])
    if mask is None:
        builder.store(value, builder.bitcast(ptr, VEC.as_pointer()), align=4)
        return
    masked_store = declare(builder, f"llvm.masked.store.v{LANES}f32.p0", ir.VoidType(),
                           [VEC, F32.as_pointer(), I32, MASK])
    builder.call(masked_store, [value, ptr, ALIGN, mask])


def fma(builder, a, b, c):
    """a * b + c, fused."""
    return builder.call(declare(builder, f"llvm.fma.v{LANES}f32", VEC, [VEC, VEC, VEC]), [a, b, c])


def activated(builder, act, emit):
    """Emit ``emit(apply)``, the output step of a kernel, once per kind of activation ``act`` (i64 runtime code),
    under a branch: ``apply`` maps a vector to its activation.

    The kernels' loops are emitted once for all activations (one copy per activation made them take 2-3 times as
    long to compile); only the output step is emitted three times: none (identity), a clamp for ReLU and ReLU6
    (max, min), and the general form for h-swish and h-sigmoid. The general form alone cost 5 vector operations
    per output vector, as many as a 5-row K loop's FMAs in a 1x1 conv from 16 channels.
    """
    general = activation(builder, act)
    lo = builder.select(builder.icmp_signed("==", act, const(NONE)), vconst(float("-inf")), vconst(0.0))
    hi = builder.select(builder.icmp_signed("==", act, const(RELU6)), vconst(6.0), vconst(float("inf")))

    def clamp(v):
        v = builder.select(builder.fcmp_ordered(">", v, lo), v, lo)
        return builder.select(builder.fcmp_ordered("<", v, hi), v, hi)

    is_none = builder.icmp_signed("==", act, const(NONE))
    is_clamp = builder.or_(builder.icmp_signed("==", act, const(RELU)), builder.icmp_signed("==", act, const(RELU6)))
    with builder.if_else(is_none) as (none, other):
        with none:
            emit(lambda v: v)
        with other:
            with builder.if_else(is_clamp) as (clamped, general_case):
                with clamped:
                    emit(clamp)
                with general_case:
                    emit(general)


def activation(builder, act):
    """The activation with runtime code ``act`` (i64, kernels.activation's codes) as a function on vectors.

    One branch-free form covers all five: y = min(max(v + shift, lo), hi) * scale, times v for h-swish. The
    parameters are chosen here, once per call; max and min are compare-and-select, which is what vmaxps and
    vminps do. Kernels use it through ``activated``, which takes cheaper forms for the common activations.
    """
    def pick(values):  # the vector for ``act`` from {code: value}, others -> values[None]
        chosen = vconst(values[None])
        for code, value in values.items():
            if code is not None:
                chosen = builder.select(builder.icmp_signed("==", act, const(code)), vconst(value), chosen)
        return chosen

    inf = float("inf")
    shift = pick({None: 0.0, HSWISH: 3.0, HSIGMOID: 3.0})
    lo = pick({None: 0.0, NONE: -inf})
    hi = pick({None: 6.0, NONE: inf, RELU: inf})
    scale = pick({None: 1.0, HSWISH: 1.0 / 6.0, HSIGMOID: 1.0 / 6.0})
    times_v = builder.icmp_signed("==", act, const(HSWISH))

    def apply(v):
        t = builder.fadd(v, shift)
        t = builder.select(builder.fcmp_ordered(">", t, lo), t, lo)
        t = builder.select(builder.fcmp_ordered("<", t, hi), t, hi)
        t = builder.fmul(t, scale)
        return builder.fmul(t, builder.select(times_v, v, vconst(1.0)))

    return apply


def counted_loop(builder, count, carried, body):
    """for i in range(count): carried = body(i, carried); returns the final ``carried`` (a list of LLVM values, the
    initial ones when count <= 0). ``body`` emits at the builder's position and returns the new values."""
    entry = builder.block
    head = builder.append_basic_block("loop")
    done = builder.append_basic_block("loop.done")
    builder.cbranch(builder.icmp_signed(">", count, const(0)), head, done)
    builder.position_at_end(head)
    # SSA form: the counter and the carried values are phi nodes at the loop head, taking their initial values from
    # ``entry`` and their next ones from the loop's last block (body may add blocks: the back edge leaves the last).
    i = builder.phi(I64)
    values = [builder.phi(value.type) for value in carried]
    new = body(i, values)
    i_next = builder.add(i, const(1))
    last = builder.block
    builder.cbranch(builder.icmp_signed("<", i_next, count), head, done)
    i.add_incoming(const(0), entry)
    i.add_incoming(i_next, last)
    for phi, first, after in zip(values, carried, new):
        phi.add_incoming(first, entry)
        phi.add_incoming(after, last)
    builder.position_at_end(done)
    result = [builder.phi(value.type) for value in carried]
    for phi, first, after in zip(result, carried, new):
        phi.add_incoming(first, entry)
        phi.add_incoming(after, last)
    return result
