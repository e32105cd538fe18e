"""tinynet.count against published figures.

1. Totals for every architecture against the papers / torchvision's model cards (published
   rounding, so the tolerances are the rounding of the published number).
2. Per layer, MobileNet V1 against TF-slim's own table (tensorflow/models research/slim/nets/
   mobilenet_v1.py docstring; weights only, no biases, no classifier), copied here by hand.
"""
import pytest

import tinynet

# arch, width, resolution, published MACs (M), tolerance (M), published params (M), tolerance (M)
PUBLISHED = [
    ("mobilenet_v1", 1.0, 224, 569, 0.5, 4.2, 0.05),     # MobileNet paper table 8 / TF-slim
    ("mobilenet_v1", 0.5, 160, 76, 0.6, 1.32, 0.01),     # MobileNet paper table 7 (76.5 counted: it truncates)
    ("mobilenet_v2", 1.0, 224, 300, 1.0, 3.4, 0.1),      # MobileNetV2 paper table 4 (3.4M)
    ("mobilenet_v3_large", 1.0, 224, 218, 1.0, 5.4, 0.1),  # 217 (torchvision _ops) - 219 (paper)
    ("mobilenet_v3_small", 1.0, 224, 56, 1.0, 2.5, 0.05),  # V3 paper table 3 / torchvision 0.057 GFLOPS
]


@pytest.mark.parametrize("arch,width,resolution,macs,macs_tol,params,params_tol", PUBLISHED)
def test_totals_match_published(arch, width, resolution, macs, macs_tol, params, params_tol):
    counted = tinynet.count(tinynet.create(arch, width), resolution)
    assert abs(counted["macs"] / 1e6 - macs) <= macs_tol, counted["macs"]
    assert abs(counted["params"] / 1e6 - params) <= params_tol, counted["params"]
    assert counted["macs"] == sum(row["macs"] for row in counted["layers"])
    assert counted["params"] == sum(row["params"] for row in counted["layers"])


SLIM_V1_224 = [  # (params, macs) for Conv2d_0, then (depthwise, pointwise) for Conv2d_1 .. Conv2d_13
    (864, 10_838_016),
    (288, 3_612_672), (2_048, 25_690_112), (576, 1_806_336), (8_192, 25_690_112),
    (1_152, 3_612_672), (16_384, 51_380_224), (1_152, 903_168), (32_768, 25_690_112),
    (2_304, 1_806_336), (65_536, 51_380_224), (2_304, 451_584), (131_072, 25_690_112),
    *[(4_608, 903_168), (262_144, 51_380_224)] * 5,
    (4_608, 225_792), (524_288, 25_690_112), (9_216, 451_584), (1_048_576, 51_380_224),
]
SLIM_V1_075_128 = [
    (648, 2_654_208),
    (216, 884_736), (1_152, 4_718_592), (432, 442_368), (4_608, 4_718_592),
    (864, 884_736), (9_216, 9_437_184), (864, 221_184), (18_432, 4_718_592),
    (1_728, 442_368), (36_864, 9_437_184), (1_728, 110_592), (73_728, 4_718_592),
    *[(3_456, 221_184), (147_456, 9_437_184)] * 5,
    (3_456, 55_296), (294_912, 4_718_592), (6_912, 110_592), (589_824, 9_437_184),
]


@pytest.mark.parametrize("width,resolution,table,total", [
    (1.0, 224, SLIM_V1_224, (3_185_088, 567_716_352)),
    (0.75, 128, SLIM_V1_075_128, (1_800_144, 106_002_432)),
])
def test_v1_layers_match_tf_slim_table(width, resolution, table, total):
    counted = tinynet.count(tinynet.create("mobilenet_v1", width), resolution)
    convs = [row for row in counted["layers"] if row["op"] in ("conv", "dw", "pw")]
    bias = [row["output"][-1] for row in convs]  # TF-slim's table counts weights only
    assert [(row["params"] - b, row["macs"]) for row, b in zip(convs, bias)] == table
    assert (sum(p for p, _ in table), sum(m for _, m in table)) == total


def test_count_table_shapes():
    rows = tinynet.count(tinynet.create("mobilenet_v3_small"), 224)["layers"]
    assert rows[0] == {"name": "00.conv", "op": "conv", "output": (112, 112, 16), "params": 3 * 3 * 3 * 16 + 16,
                       "macs": 112 * 112 * 27 * 16}
    assert rows[-1]["output"] == (1000,) and rows[-1]["op"] == "fc"


# The V3 paper's Table 3 counts the TF-slim models: (arch, MACs (M), params (M)) at width 0.75, 224x224.
V3_PAPER_075 = [("mobilenet_v3_large", 155, 4.0), ("mobilenet_v3_small", 44, 2.0)]


@pytest.mark.parametrize("arch,macs,params", V3_PAPER_075)
def test_tf_convention_reproduces_v3_paper_table_3(arch, macs, params):
    counted = tinynet.count(tinynet.create(arch, 0.75, num_classes=1001, convention="tf"))
    assert abs(counted["macs"] / 1e6 - macs) <= 0.5, counted["macs"]
    assert abs(counted["params"] / 1e6 - params) <= 0.05, counted["params"]
    default = tinynet.count(tinynet.create(arch, 0.75, num_classes=1001))  # torchvision's rule stays the default
    assert abs(default["macs"] / 1e6 - macs) > 3


def test_tf_convention_channels():
    tf = {layer.name: layer for layer in tinynet.create("mobilenet_v3_large", 0.75, convention="tf").layers}
    torch = {layer.name: layer for layer in tinynet.create("mobilenet_v3_large", 0.75).layers}
    # Block 2 expands 16 -> 64 (ratio 4): TF applies 4 to the rounded input (16), torchvision scales 64 by 0.75.
    assert (tf["02.expand"].cout, torch["02.expand"].cout) == (64, 48)
    assert (tf["09.expand"].cout, torch["09.expand"].cout) == (make(64 * 184 / 80), make(184 * 0.75))
    assert (tf["18.fc"].cout, torch["18.fc"].cout) == (1280, 960)  # C5: never narrower than at 1.0 in TF
    assert tf["16.conv"].cout == torch["16.conv"].cout == 720  # the head conv scales in both


def make(value):  # TF's channel rounding, written out again: to a multiple of 8, never 10 % below
    rounded = max(8, int(value + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * value else rounded


@pytest.mark.parametrize("arch", sorted(tinynet.ARCHITECTURES))
def test_conventions_agree_at_width_1(arch):
    assert tinynet.create(arch, convention="tf").layers == tinynet.create(arch).layers


def test_tf_convention_width_is_inferred_and_bad_convention_refused():
    assert tinynet.create("mobilenet_v3_small", 0.75, convention="tf").width == 0.75
    with pytest.raises(tinynet.TinynetError, match="convention"):
        tinynet.create("mobilenet_v3_small", 0.75, convention="keras")
