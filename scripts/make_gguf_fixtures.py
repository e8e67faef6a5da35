#!/usr/bin/env python3
"""Write small GGUF files with gguf-py (llama.cpp's own Python package), for kiln-gguf's tests.

Creates, under tests/fixtures/gguf/:

  gguf-py-fixture.gguf          default alignment (32): every scalar value type, arrays of
                                several element types (one nested), tensors F32 (2-D and 3-D),
                                F16 and Q8_0 with known bytes
  gguf-py-fixture-align64.gguf  `general.alignment` = 64, a Q8_0 tensor and a Q2_K tensor (a type
                                kiln does not compute with: its bytes are arbitrary)
  gguf-py-fixtures.json         what each file holds, written from the same tables as the files
                                (not read back from them): metadata in file order with gguf-py's
                                type names, and per tensor its name, type, dims (innermost
                                first, as stored), byte length and bytes in hex

kiln-gguf's test (crates/kiln-gguf/tests/gguf_py_fixture.rs) reads both files and compares
everything with the JSON.

Usage (from the repo root; no network, deterministic):

    pip install gguf==0.19.0 numpy
    python3 scripts/make_gguf_fixtures.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q, GGUFValueType as T

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "gguf"

# (key, gguf-py value type, value, array element type or None). File order is this order, after
# the `general.architecture` key GGUFWriter writes first.
METADATA = [
    ("test.u8", T.UINT8, 200, None),
    ("test.i8", T.INT8, -100, None),
    ("test.u16", T.UINT16, 60000, None),
    ("test.i16", T.INT16, -30000, None),
    ("test.u32", T.UINT32, 4_000_000_000, None),
    ("test.i32", T.INT32, -2_000_000_000, None),
    ("test.f32", T.FLOAT32, 1.5, None),
    ("test.bool", T.BOOL, True, None),
    ("test.string", T.STRING, "héllo, wörld ✓", None),
    ("test.u64", T.UINT64, 2**63 + 5, None),
    ("test.i64", T.INT64, -(2**62) - 3, None),
    ("test.f64", T.FLOAT64, 0.1, None),
    ("test.arr.i32", T.ARRAY, [1, -2, 3], T.INT32),
    ("test.arr.u8", T.ARRAY, [0, 7, 255], T.UINT8),
    ("test.arr.u64", T.ARRAY, [2**64 - 1, 0], T.UINT64),
    ("test.arr.f32", T.ARRAY, [0.5, -0.25, 3.0], T.FLOAT32),
    ("test.arr.f64", T.ARRAY, [1e300, -2.5], T.FLOAT64),
    ("test.arr.bool", T.ARRAY, [True, False, True], T.BOOL),
    ("test.arr.str", T.ARRAY, ["a", "bc", "✓", ""], T.STRING),
    # Nested: gguf-py infers the inner arrays' element type from Python ints (INT32).
    ("test.arr.nested", T.ARRAY, [[1, 2], [3]], T.ARRAY),
]


def tensors_main() -> list[tuple[str, np.ndarray, Q]]:
    rng = np.random.RandomState(1234)
    q8 = gguf.quants.quantize(rng.standard_normal((2, 64)).astype(np.float32), Q.Q8_0)
    return [
        ("f32.matrix", (np.arange(6, dtype=np.float32) * 0.5 - 1).reshape(2, 3), Q.F32),
        ("f32.cube", np.arange(24, dtype=np.float32).reshape(2, 3, 4), Q.F32),
        ("f16.vector", np.array([0.0, 1.0, -2.0, 0.5, 65504.0, -0.125, 3.0, 1e-3], dtype=np.float16), Q.F16),
        ("blk.0.q8.weight", q8, Q.Q8_0),
    ]


def tensors_align64() -> list[tuple[str, np.ndarray, Q]]:
    rng = np.random.RandomState(99)
    q8 = gguf.quants.quantize(rng.standard_normal((3, 32)).astype(np.float32), Q.Q8_0)
    q2k = np.arange(84, dtype=np.uint8).reshape(1, 84)  # one Q2_K block (256 values), any bytes
    return [
        ("first.weight", np.array([1.0, 2.0, 3.0], dtype=np.float32), Q.F32),
        ("q8.weight", q8, Q.Q8_0),
        ("q2k.weight", q2k, Q.Q2_K),
    ]


def json_value(vtype: T, value, sub: T | None):
    if vtype != T.ARRAY:
        return {"type": vtype.name, "value": value}
    if sub == T.ARRAY:
        return {"type": "ARRAY", "elem": "ARRAY", "value": [json_value(T.ARRAY, v, T.INT32) for v in value]}
    return {"type": "ARRAY", "elem": sub.name, "value": value}


def write(path: Path, metadata, tensors, alignment: int | None) -> dict:
    w = gguf.GGUFWriter(path, arch="kiln-test")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    for key, vtype, value, sub in metadata:
        w.add_key_value(key, value, vtype, sub_type=None if sub == T.ARRAY else sub)
    described = []
    for name, data, qtype in tensors:
        raw = qtype not in (Q.F32, Q.F16)
        w.add_tensor(name, data, raw_dtype=qtype if raw else None)
        if raw:
            block, type_size = gguf.GGML_QUANT_SIZES[qtype]
            dims = [data.shape[-1] // type_size * block] + list(reversed(data.shape[:-1]))
        else:
            dims = list(reversed(data.shape))
        entry = {"name": name, "type": qtype.name, "type_id": int(qtype), "dims": dims,
                 "n_bytes": int(data.nbytes), "hex": data.tobytes().hex()}
        if qtype == Q.Q8_0:
            entry["dequantized"] = [float(x) for x in gguf.quants.dequantize(data, qtype).ravel()]
        described.append(entry)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    md = [{"key": "general.architecture", "type": "STRING", "value": "kiln-test"}]
    if alignment is not None:
        md.append({"key": "general.alignment", "type": "UINT32", "value": alignment})
    md += [{"key": k, **json_value(t, v, s)} for k, t, v, s in metadata]
    return {"version": 3, "alignment": alignment or 32, "metadata": md, "tensors": described}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    spec = {
        "generator": f"gguf-py {gguf.__version__ if hasattr(gguf, '__version__') else '0.19.0'}, numpy {np.__version__}",
        "dims_convention": "innermost first (GGML ne[0] = row length); numpy shape is the reverse",
        "files": {
            "gguf-py-fixture.gguf": write(OUT / "gguf-py-fixture.gguf", METADATA, tensors_main(), None),
            "gguf-py-fixture-align64.gguf": write(
                OUT / "gguf-py-fixture-align64.gguf", METADATA[:3], tensors_align64(), 64),
        },
    }
    (OUT / "gguf-py-fixtures.json").write_text(json.dumps(spec, indent=1, ensure_ascii=False) + "\n")
    for name in spec["files"]:
        print(f"wrote {OUT / name} ({(OUT / name).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
