"""Detection building blocks: anchors, box decoding and postprocessing, as pure functions on NumPy arrays."""
