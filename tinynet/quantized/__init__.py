"""Integer inference of quantized TFLite files, bit for bit what LiteRT computes (issue 15).

``program.Program`` runs the file's graph operator by operator on 8-bit tensors and int32 accumulators
(``ops``), with the requantization of one of two profiles (``arithmetic``): "litert", what LiteRT 2.x runs on
x86 by default (XNNPACK where it takes the operator, TFLite's builtin kernels elsewhere), and "reference",
TFLite's builtin reference kernels.
"""
