"""Map torchvision and timm MobileNet state dicts onto tinynet's layer tables.

torchvision (``features.<row>...``, ``classifier.<i>``): mobilenet_v2, mobilenet_v3_large/small.
timm (``conv_stem``, ``blocks.<stage>.<i>``, ``classifier``): mobilenetv1_*, mobilenetv2_*, mobilenetv3_large_*,
mobilenetv3_small_* (and their ``_minimal`` and ``tf_`` ports).
Row numbers of tinynet's tables equal torchvision's ``features`` indices, so block i maps to
``features.i``; timm's stage/repeat pairs are numbered in order. timm's V3 puts the last 1x1 conv in
``blocks`` and applies ``conv_head`` (with a bias, no BatchNorm) after the pool: that is tinynet's
1280/1024-wide fc row. timm's V2 keeps the head conv as ``conv_head`` + ``bn2`` before the pool.
"""
import re
from pathlib import Path

from tinynet.architectures import rows
from tinynet.errors import UnsupportedModelError
from tinynet.formats.fold import Source
from tinynet.preprocess import IMAGENET_MEAN, IMAGENET_STD

# BatchNorm epsilon each library builds these models with (read from their model definitions).
BN_EPS = {"mobilenet_v2": 1e-5, "mobilenet_v3_large": 1e-3, "mobilenet_v3_small": 1e-3, "timm": 1e-5}


def detect(tensors):
    """``(library, arch)`` recognised from tensor names, or raise UnsupportedModelError."""
    names = set(tensors)
    if "conv_stem.weight" in names and "blocks.0.0.conv_dw.weight" in names:
        return "timm", _timm_arch(names)
    if any(n.startswith(("mobilenet_v1.", "mobilenet_v2.")) for n in names):
        return "transformers", "mobilenet_v1" if any(n.startswith("mobilenet_v1.") for n in names) else "mobilenet_v2"
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


def timm_conventions(arch, path, config):
    """``(BatchNorm epsilon, padding, preprocess spec)`` of a timm checkpoint. The ``tf_`` ports of TensorFlow
    weights (tf_mobilenetv3_*) pad as TensorFlow SAME and use epsilon 1e-3; the tensors look the same, so the
    model name decides: timm's config.json beside the file ("architecture"), else the file or folder name
    (Hugging Face's cache keeps it: models--timm--tf_mobilenetv3_large_100.in1k/...)."""
    name = str((config or {}).get("architecture") or "")
    if not name:
        cached = [p.removeprefix("models--timm--") for p in Path(path).parts if p.startswith("models--timm--")]
        name = cached[-1] if cached else Path(path).name
    tf = name.startswith("tf_")
    if arch == "mobilenet_v1":  # the "timm" preset is mobilenetv1_100's pretrained config (tinynet.preprocess)
        return 1e-5, "symmetric", {"preset": "timm"}
    if tf:
        spec = {"preset": "timm", "interpolation": "bilinear"}
    else:
        spec = {"preset": "timm", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    pretrained = (config or {}).get("pretrained_cfg")
    if isinstance(pretrained, dict):  # what timm itself evaluates with; checked with the rest of the metadata
        for ours, theirs in (("mean", "mean"), ("std", "std"), ("interpolation", "interpolation"),
                             ("crop_fraction", "crop_pct")):
            if theirs in pretrained:
                spec[ours] = pretrained[theirs]
        if isinstance(pretrained.get("input_size"), list) and len(pretrained["input_size"]) == 3:
            spec["size"] = pretrained["input_size"][1]
    return (1e-3, "tf_same", spec) if tf else (1e-5, "symmetric", spec)


def _timm_arch(names):
    if not any(".conv_pwl." in n for n in names):
        return "mobilenet_v1"
    if "conv_head.bias" not in names:  # V2: head conv + BatchNorm before the pool; V3: conv_head with bias after it
        return "mobilenet_v2"
    n_blocks = len(_timm_blocks(names))
    minimal = not any(".se." in n for n in names)
    for arch in ("mobilenet_v3_large", "mobilenet_v3_small"):
        if sum(r.kind == "ir" for r in rows(arch)) + 1 == n_blocks:  # + the 1x1 conv timm keeps in its last stage
            return arch + "_minimalistic" if minimal else arch
    raise UnsupportedModelError(f"timm MobileNet V3 with {n_blocks} blocks: tinynet knows the 16 of V3-Large and the 12 of "
                                "V3-Small (not the depth-scaled variants)")


def _timm_blocks(names):
    """timm's (stage, index) block numbers in execution order."""
    return sorted({tuple(int(x) for x in m.groups()) for n in names if (m := re.match(r"blocks\.(\d+)\.(\d+)\.", n))})


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
    """Sources for a timm mobilenetv1_* / mobilenetv2_* / mobilenetv3_* state dict."""
    table = rows(arch)
    blocks = [f"blocks.{stage}.{rep}" for stage, rep in _timm_blocks(tensors)]
    n_blocks = sum(r.kind in ("ds", "ir") for r in table) + (arch.startswith("mobilenet_v3") and 1)
    if arch != "mobilenet_v1" and len(blocks) != n_blocks:
        raise UnsupportedModelError(f"timm {arch} with {len(blocks)} blocks instead of {n_blocks}: depth-scaled variants "
                                    "(e.g. mobilenetv2_110d) are not supported")
    blocks = iter(blocks)
    fcs = iter([("conv_head", "pw"), ("classifier", "fc")] if arch.startswith("mobilenet_v3") else [("classifier", "fc")])
    sources = []
    for i, row in enumerate(table):
        name = f"{i:02d}"
        if row.kind == "conv" and row.k > 1:
            sources.append(Source(f"{name}.conv", "conv", "conv_stem.weight", bn="bn1"))
        elif row.kind == "conv" and arch == "mobilenet_v2":
            sources.append(Source(f"{name}.conv", "pw", "conv_head.weight", bn="bn2"))
        elif row.kind == "conv":
            q = next(blocks, "blocks.missing")
            sources.append(Source(f"{name}.conv", "pw", f"{q}.conv.weight", bn=f"{q}.bn1"))
        elif row.kind == "ds":
            q = next(blocks, f"blocks.{len(sources)}.0")
            sources.append(Source(f"{name}.dw", "dw", f"{q}.conv_dw.weight", bn=f"{q}.bn1"))
            sources.append(Source(f"{name}.pw", "pw", f"{q}.conv_pw.weight", bn=f"{q}.bn2"))
        elif row.kind == "ir":
            q = next(blocks)
            if f"{q}.conv_pwl.weight" in tensors:  # InvertedResidual: expand, dw, [se], project
                sources.append(Source(f"{name}.expand", "pw", f"{q}.conv_pw.weight", bn=f"{q}.bn1"))
                sources.append(Source(f"{name}.dw", "dw", f"{q}.conv_dw.weight", bn=f"{q}.bn2"))
                project = Source(f"{name}.project", "pw", f"{q}.conv_pwl.weight", bn=f"{q}.bn3")
            else:  # DepthwiseSeparable (expansion 1): dw, [se], project
                sources.append(Source(f"{name}.dw", "dw", f"{q}.conv_dw.weight", bn=f"{q}.bn1"))
                project = Source(f"{name}.project", "pw", f"{q}.conv_pw.weight", bn=f"{q}.bn2")
            if f"{q}.se.conv_reduce.weight" in tensors:
                for part in ("reduce", "expand"):
                    w = f"{q}.se.conv_{part}"
                    sources.append(Source(f"{name}.se.{part}", "pw", f"{w}.weight", bias=f"{w}.bias"))
            sources.append(project)
        elif row.kind == "fc":
            prefix, op = next(fcs)
            sources.append(Source(f"{name}.fc", op, f"{prefix}.weight", bias=f"{prefix}.bias"))
    return sources
