"""LiteRT as a test oracle for tinynet's integer path: run a .tflite under a chosen kernel set and read any tensor.

    outputs = run_litert(path, [x], resolver="AUTO", tensors=[17, 42])

``resolver``: "AUTO" (LiteRT's default: the XNNPACK delegate where it applies, what `profile="litert"` matches),
"REF" (TFLite's builtin reference kernels, `profile="reference"`), "BUILTIN" (the optimized builtin kernels, no
delegate). ``tensors``: indices of tensors to return instead of the graph outputs. Under AUTO a tensor inside a
delegated partition is not kept, so the model is rewritten (LiteRT's own flatbuffer schema module) to list those
tensors as graph outputs, which the delegate then materialises. Oracle only: tinynet never imports this.
"""
import numpy as np
import pytest

litert = pytest.importorskip("ai_edge_litert.interpreter", reason="LiteRT (ai-edge-litert) is the oracle here: "
                             "pip install -e '.[oracle]'")

RESOLVERS = {"AUTO": litert.OpResolverType.AUTO, "REF": litert.OpResolverType.BUILTIN_REF,
             "BUILTIN": litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}


def with_outputs(model_bytes, tensors):
    """The model with graph outputs ``tensors`` (indices in the main subgraph)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_bytes, 0))
    model.subgraphs[0].outputs = np.asarray(tensors, np.int32)
    builder = flatbuffers.Builder(len(model_bytes) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def run_litert(model, inputs, resolver="AUTO", tensors=None, threads=1):
    """``model``: a path or the file's bytes. Returns the graph outputs (or ``tensors``) as NumPy arrays."""
    data = open(model, "rb").read() if not isinstance(model, (bytes, bytearray)) else bytes(model)
    if tensors is not None:
        data = with_outputs(data, list(tensors))
    interpreter = litert.Interpreter(model_content=data, num_threads=threads,
                                     experimental_op_resolver_type=RESOLVERS[resolver])
    interpreter.allocate_tensors()
    for detail, x in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    return [interpreter.get_tensor(detail["index"]).copy() for detail in interpreter.get_output_details()]
