"""Map torchvision and timm MobileNet state dicts onto tinynet's layer tables.

torchvision (``features.<row>...``, ``classifier.<i>``): mobilenet_v2, mobilenet_v3_large/small.
timm (``conv_stem``, ``blocks.<stage>.<i>``, ``classifier``): mobilenetv1_* (e.g. mobilenetv1_100).
Row numbers of tinynet's tables equal torchvision's ``features`` indices, so block i maps to
``features.i``; timm's stage/repeat pairs are numbered in order.
"""
import re

from tinynet.architectures import rows
from tinynet.errors import UnsupportedModelError
from tinynet.formats.fold import Source

# BatchNorm epsilon each library builds these models with (read from their model definitions).
BN_EPS = {"mobilenet_v2": 1e-5, "mobilenet_v3_large": 1e-3, "mobilenet_v3_small": 1e-3, "timm": 1e-5}


def detect(tensors):
    """``(library, arch)`` recognised from tensor names, or raise UnsupportedModelError."""
    names = set(tensors)
    if "conv_stem.weight" in names and "blocks.0.0.conv_dw.weight" in names:
        if any(".conv_pwl." in n for n in names):
            raise UnsupportedModelError("timm MobileNet V2/V3 checkpoints are not supported yet; timm mobilenetv1_* is")
        return "timm", "mobilenet_v1"
    if "features.1.conv.0.0.weight" in names:
        return "torchvision", "mobilenet_v2"
    if "features.1.block.0.0.weight" in names:
        indices = {n.split(".")[1] for n in names if n.startswith("features.")}
        n_features = next(i for i in range(len(indices) + 1) if str(i) not in indices)  # features.0 .. n-1
        for arch in ("mobilenet_v3_large", "mobilenet_v3_small"):
            if sum(r.kind in ("conv", "ir") for r in rows(arch)) == n_features:
                return "torchvision", arch
    sample = ", ".join(sorted(names)[:3])
    raise UnsupportedModelError(f"tensor names ({sample}, ...) match no torchvision or timm MobileNet tinynet knows")


def torchvision_sources(arch, tensors):
    """Sources for a torchvision mobilenet_v2 / mobilenet_v3_* state dict, following the table of ``arch``."""
    sources, fcs = [], iter({"mobilenet_v2": [1]}.get(arch, [0, 3]))
    for i, row in enumerate(rows(arch)):
        p, name = f"features.{i}", f"{i:02d}"
        if row.kind == "conv":
            sources.append(Source(f"{name}.conv", "conv" if row.k > 1 else "pw", f"{p}.0.weight", bn=f"{p}.1"))
        elif row.kind == "ir" and arch == "mobilenet_v2":
            j = 0
            if f"{p}.conv.3.weight" in tensors:  # expansion ratio != 1: conv.0 is the expand conv
                sources.append(Source(f"{name}.expand", "pw", f"{p}.conv.0.0.weight", bn=f"{p}.conv.0.1"))
                j = 1
            sources.append(Source(f"{name}.dw", "dw", f"{p}.conv.{j}.0.weight", bn=f"{p}.conv.{j}.1"))
            sources.append(Source(f"{name}.project", "pw", f"{p}.conv.{j + 1}.weight", bn=f"{p}.conv.{j + 2}"))
        elif row.kind == "ir":
            parts = sorted({int(n.split(".")[3]) for n in tensors if n.startswith(f"{p}.block.")})
            convs = [j for j in parts if f"{p}.block.{j}.fc1.weight" not in tensors]
            roles = ["expand", "dw", "project"][-len(convs):] if 2 <= len(convs) <= 3 else []
            for j in parts:
                q = f"{p}.block.{j}"
                if j not in convs:
                    sources.append(Source(f"{name}.se.reduce", "pw", f"{q}.fc1.weight", bias=f"{q}.fc1.bias"))
                    sources.append(Source(f"{name}.se.expand", "pw", f"{q}.fc2.weight", bias=f"{q}.fc2.bias"))
                elif roles:
                    role = roles[convs.index(j)]
                    sources.append(Source(f"{name}.{role}", "dw" if role == "dw" else "pw", f"{q}.0.weight", bn=f"{q}.1"))
            if not parts:
                sources.append(Source(f"{name}.dw", "dw", f"{p}.block.0.0.weight"))  # reported as missing
        elif row.kind == "fc":
            c = next(fcs)
            sources.append(Source(f"{name}.fc", "fc", f"classifier.{c}.weight", bias=f"classifier.{c}.bias"))
    return sources


def timm_sources(arch, tensors):
    """Sources for a timm mobilenetv1_* state dict."""
    blocks = sorted({tuple(int(x) for x in m.groups()) for n in tensors if (m := re.match(r"blocks\.(\d+)\.(\d+)\.", n))})
    blocks = iter(blocks)
    sources = []
    for i, row in enumerate(rows(arch)):
        name = f"{i:02d}"
        if row.kind == "conv":
            sources.append(Source(f"{name}.conv", "conv", "conv_stem.weight", bn="bn1"))
        elif row.kind == "ds":
            stage, rep = next(blocks, (len(sources), 0))
            q = f"blocks.{stage}.{rep}"
            sources.append(Source(f"{name}.dw", "dw", f"{q}.conv_dw.weight", bn=f"{q}.bn1"))
            sources.append(Source(f"{name}.pw", "pw", f"{q}.conv_pw.weight", bn=f"{q}.bn2"))
        elif row.kind == "fc":
            sources.append(Source(f"{name}.fc", "fc", "classifier.weight", bias="classifier.bias"))
    return sources
