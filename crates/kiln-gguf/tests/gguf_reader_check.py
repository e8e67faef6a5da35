#!/usr/bin/env python3
"""Read a GGUF file with gguf-py's GGUFReader (llama.cpp's Python package, independent of kiln)
and print what it finds as JSON, for kiln-gguf's interop test (tests/gguf_py_interop.rs).

Usage: python3 gguf_reader_check.py FILE.gguf

Prints {"alignment", "data_offset", "fields": [{"key", "types", "value"}], "tensors": [{"name",
"type", "shape", "n_elements", "n_bytes", "data_offset", "data_shape", "hex"}]}. Keys are in file
order, without the reader's own "GGUF.*" header pseudo-fields. "types" is gguf-py's type list
(["ARRAY", "INT32"] for an array of i32; nested arrays list the first element's types) and
"value" its `contents()` (nested arrays flattened).

Dims convention: "shape" is as stored, innermost first (GGML ne[0] = row length); numpy's
"data_shape" is the reverse, and for block-quantized types (and BF16) its last axis counts bytes.
This script checks that relation itself and exits 1 if it does not hold.

Needs: pip install gguf==0.19.0
"""

import json
import sys

import numpy as np
from gguf import GGUFReader, GGML_QUANT_SIZES, GGMLQuantizationType as Q

# Types gguf-py exposes as numpy arrays of the element type; all others are uint8 bytes.
NUMERIC = {Q.F32, Q.F16, Q.F64, Q.I8, Q.I16, Q.I32, Q.I64}


def main(path: str) -> int:
    r = GGUFReader(path)
    fields = []
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue
        fields.append({"key": key, "types": [t.name for t in f.types], "value": f.contents()})
    tensors = []
    problems = []
    for t in r.tensors:
        shape = [int(x) for x in t.shape]
        data_shape = list(t.data.shape)
        if t.tensor_type in NUMERIC:
            want = list(reversed(shape))
        else:
            block, type_size = GGML_QUANT_SIZES[t.tensor_type]
            want = list(reversed(shape))
            want[-1] = want[-1] // block * type_size
        if data_shape != want:
            problems.append(f"{t.name}: data shape {data_shape}, expected {want} from shape {shape}")
        raw = np.ascontiguousarray(t.data).view(np.uint8).tobytes()
        if len(raw) != t.n_bytes:
            problems.append(f"{t.name}: {len(raw)} data bytes, n_bytes says {t.n_bytes}")
        tensors.append({
            "name": t.name,
            "type": t.tensor_type.name,
            "shape": shape,
            "n_elements": int(t.n_elements),
            "n_bytes": int(t.n_bytes),
            "data_offset": int(t.data_offset),
            "data_shape": data_shape,
            "hex": raw.hex(),
        })
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    json.dump({"alignment": int(r.alignment), "data_offset": int(r.data_offset), "fields": fields, "tensors": tensors},
              sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
