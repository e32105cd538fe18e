"""tinynet.graph: head nodes over backbone taps, each kind against a float64 NumPy oracle written here."""
import numpy as np
import pytest

import tinynet
from tinynet.graph import NODE_KINDS, GraphPlan, Node, head_shapes, head_weight_shapes

RNG = np.random.default_rng(11)


def oracle_dw(x, w, b, stride):
    """3x3 depthwise, zero padding 1 (PyTorch's), ReLU6; loops over the taps."""
    n, h, wd, c = x.shape
    p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ho, wo = (h - 1) // stride + 1, (wd - 1) // stride + 1
    out = np.zeros((n, ho, wo, c))
    for dy in range(3):
        for dx in range(3):
            out += p[:, dy:dy + stride * ho:stride, dx:dx + stride * wo:stride] * w[dy, dx]
    return np.clip(out + b, 0, 6)


@pytest.fixture(scope="module")
def backbone():
    model = tinynet.create("mobilenet_v2", 0.35, 10)
    return model, model.layers[:-2]  # up to the head conv "18.conv": no pool, no classifier


def head_weights(model, nodes, x_shape):
    taps = model.tap(np.zeros(x_shape, np.float32), ["13.expand", "18.conv"])
    weights = dict(model.weights)
    for name, shape in head_weight_shapes(nodes, {k: v.shape for k, v in taps.items()}).items():
        weights[name] = (0.3 * RNG.standard_normal(shape)).astype(np.float32)
    return weights


def test_head_of_several_kinds_and_outputs(backbone):
    model, layers = backbone
    nodes = (Node("a.dw", "dw", ("13.expand",), k=3, stride=2, act="relu6"),
             Node("a", "pw", ("a.dw",), 8),
             Node("a.anchors", "per_anchor", ("a",), options=(("columns", 4),)),
             Node("b", "pw", ("18.conv",), 8),
             Node("b.anchors", "per_anchor", ("b",), options=(("columns", 4),)),
             Node("joined", "concat", ("a.anchors", "b.anchors"), options=(("axis", 1),)),
             Node("gate", "sigmoid", ("joined",)),
             Node("gated", "mul", ("joined", "gate")),
             Node("sum", "add", ("gated", "joined")),
             Node("up", "resize", ("b",), options=(("size", (7, 5)), ("half_pixel_centers", True))),
             Node("best", "argmax", ("up",)))
    x = RNG.standard_normal((2, 97, 131, 3)).astype(np.float32)
    weights = head_weights(model, nodes, x.shape)
    out = GraphPlan(layers, nodes, ("sum", "best", "13.expand"), weights, "symmetric", x.shape, 2).run(x)

    taps = {k: v.astype(np.float64) for k, v in model.tap(x, ["13.expand", "18.conv"]).items()}
    assert np.array_equal(out["13.expand"], taps["13.expand"].astype(np.float32))  # a tap is an output too
    a = oracle_dw(taps["13.expand"], weights["a.dw.w"], weights["a.dw.b"], 2) @ weights["a.w"] + weights["a.b"]
    b = taps["18.conv"] @ weights["b.w"] + weights["b.b"]
    joined = np.concatenate([a.reshape(2, -1, 4), b.reshape(2, -1, 4)], axis=1)
    gate = 1 / (1 + np.exp(-joined))
    assert out["sum"].shape == joined.shape
    assert np.abs(out["sum"] - (joined * gate + joined)).max() <= 1e-4 * np.abs(joined).max()
    # resize (half-pixel centres, clamped at 0) + argmax, by the formula
    h, w = b.shape[1:3]
    sy, sx = (np.maximum((np.arange(n) + 0.5) * (m / n) - 0.5, 0) for n, m in ((7, h), (5, w)))
    y0, x0 = np.floor(sy).astype(int), np.floor(sx).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (sy - y0)[:, None, None], (sx - x0)[None, :, None]
    up = ((1 - fy) * ((1 - fx) * b[:, y0][:, :, x0] + fx * b[:, y0][:, :, x1])
          + fy * ((1 - fx) * b[:, y1][:, :, x0] + fx * b[:, y1][:, :, x1]))
    margin = np.sort(up, axis=-1)[..., -1] - np.sort(up, axis=-1)[..., -2]
    clear = margin > 1e-3  # near-ties may go either way in float32
    assert np.array_equal(out["best"][clear], up.argmax(-1)[clear])


def test_a_head_reads_a_tensor_inside_a_block(backbone):
    model, layers = backbone
    x = RNG.standard_normal((1, 64, 64, 3)).astype(np.float32)
    nodes = (Node("h", "pw", ("03.expand",), 4),)
    weights = {**model.weights, "h.w": np.ones((layers[[l.name for l in layers].index("03.expand")].cout, 4), np.float32),
               "h.b": np.zeros(4, np.float32)}
    plan = GraphPlan(layers, nodes, ("h",), weights, "symmetric", x.shape, 1)
    expand = model.tap(x, ["03.expand"])["03.expand"]
    assert np.allclose(plan.run(x)["h"], expand.sum(-1, keepdims=True).repeat(4, -1), rtol=1e-5, atol=1e-4)


def test_unknown_kind_and_missing_input_are_named():
    with pytest.raises(ValueError, match="unknown kind 'fft'"):
        head_shapes([Node("x", "fft", ("in",))], {"in": (1, 4, 4, 2)})
    with pytest.raises(ValueError, match="reads 'nowhere'"):
        head_shapes([Node("x", "sigmoid", ("nowhere",))], {"in": (1, 4, 4, 2)})


def test_every_kind_binds_or_aliases():
    for name, kind in NODE_KINDS.items():
        assert (kind.bind is None) != (kind.alias is None), name
        assert kind.alias is not None or kind.kernels, name


def test_concat_parts_written_in_place_give_the_concatenation(backbone):
    """At batch 1 each per-anchor part is one block of the concat's output, so its conv writes there and no copy is
    bound; a part something else reads, or a batch of 2, keeps the copy. Same values either way."""
    from tinynet.graph import in_place_concats

    model, layers = backbone
    nodes = (Node("a", "pw", ("13.expand",), 8), Node("a.anchors", "per_anchor", ("a",), options=(("columns", 4),)),
             Node("b", "pw", ("18.conv",), 12), Node("b.anchors", "per_anchor", ("b",), options=(("columns", 4),)),
             Node("joined", "concat", ("a.anchors", "b.anchors"), options=(("axis", 1),)))
    x = RNG.standard_normal((2, 97, 131, 3)).astype(np.float32)
    weights = head_weights(model, nodes, x.shape)
    one = GraphPlan(layers, nodes, ("joined",), weights, "symmetric", (1, 97, 131, 3), 2)
    two = GraphPlan(layers, nodes, ("joined",), weights, "symmetric", x.shape, 2)
    assert [kernel.__name__ for kernel, _ in one.steps] == ["gemm_bias_act_f32"] * 2
    assert len(two.steps) == 3
    tap_shapes = {name: (1, *one.backbone.tapped(name).shape[1:]) for name in ("13.expand", "18.conv")}
    read_twice = nodes + (Node("b.gate", "sigmoid", ("b",)),)  # "b" is read by its view and by the sigmoid
    assert in_place_concats(nodes, head_shapes(nodes, tap_shapes)) == {"joined": {"a": 0, "b": 7 * 9 * 8}}  # 97x131: 7x9 at /16
    assert in_place_concats(read_twice, head_shapes(read_twice, tap_shapes)) == {}
    both = two.run(x)["joined"].copy()
    assert np.array_equal(one.run(x[:1])["joined"], both[:1])
    taps = {k: v.astype(np.float64) for k, v in model.tap(x, ["13.expand", "18.conv"]).items()}
    a = (taps["13.expand"] @ weights["a.w"] + weights["a.b"]).reshape(2, -1, 4)
    b = (taps["18.conv"] @ weights["b.w"] + weights["b.b"]).reshape(2, -1, 4)
    expected = np.concatenate([a, b], axis=1)
    assert np.abs(both - expected).max() <= 1e-4 * np.abs(expected).max()


def test_fresh_outputs_are_new_arrays_with_the_same_values(backbone):
    """A fresh output is written into a new array on every run (the caller keeps it; the next run does not
    overwrite it), with the values the plan's own buffer gets; one that another node reads is refused."""
    model, layers = backbone
    nodes = (Node("b", "pw", ("18.conv",), 5),
             Node("up", "resize", ("b",), options=(("size", (9, 11)), ("half_pixel_centers", True))),
             Node("best", "argmax", ("b",)))
    x = RNG.standard_normal((2, 97, 131, 3)).astype(np.float32)
    weights = head_weights(model, nodes, x.shape)
    kept = GraphPlan(layers, nodes, ("up", "best"), weights, "symmetric", x.shape, 2)
    fresh = GraphPlan(layers, nodes, ("up", "best"), weights, "symmetric", x.shape, 2, fresh=("up", "best"))
    expected = {name: array.copy() for name, array in kept.run(x).items()}
    first = fresh.run(x)
    second = fresh.run(x[::-1].copy())
    assert first["best"].dtype == np.int32 and first["up"].shape == (2, 9, 11, 5)
    for name in ("up", "best"):
        assert first[name] is not second[name]
        assert np.array_equal(first[name], expected[name])  # not overwritten by the second run
        assert np.array_equal(second[name], expected[name][::-1])
    with pytest.raises(ValueError, match="no other node reads"):
        GraphPlan(layers, nodes, ("b", "up"), weights, "symmetric", x.shape, 1, fresh=("b",))
    with pytest.raises(ValueError, match="not a head node"):
        GraphPlan(layers, nodes, ("18.conv",), weights, "symmetric", x.shape, 1, fresh=("18.conv",))
