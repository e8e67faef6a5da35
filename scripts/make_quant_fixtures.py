#!/usr/bin/env python3
"""Generate the GGML block-format fixtures that kiln-quant's tests compare against, bit for bit.

Writes, under tests/fixtures/quant/ (about 250 kilobytes in all):

  <TYPE>.blocks.bin   raw blocks (or raw F32/F16/BF16 elements): random blocks with realistic
                      scales plus special cases (all-zero block, largest f16 scale, negative zero,
                      subnormal, negative and infinite scales, all-ones quant bits)
  <TYPE>.deq.f32      gguf-py's `gguf.quants.dequantize` of those bytes (little-endian f32)
  quantize.src.f32    input rows (256 values each): Gaussian rows of varied magnitude plus special
                      rows (zeros, negative zeros, ties, constant rows, rounding halves, tiny and
                      huge values)
  <TYPE>.quant.bin    gguf-py's `gguf.quants.quantize` of those rows, for the types it quantizes
  manifest.json       what each file holds (counts, row length) and the versions that made it

Usage (from the repo root; needs only numpy and the `gguf` package, e.g. gguf==0.19.0):

    python scripts/make_quant_fixtures.py

Deterministic: numpy's legacy RandomState with fixed seeds, so two runs give identical bytes.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "quant"

# Types whose blocks gguf-py dequantizes and kiln-quant reads (Q8_K is activation-only).
DEQUANT_TYPES = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q4_K, T.Q5_K, T.Q6_K]
# Types gguf-py quantizes (the k-quants it cannot).
QUANT_TYPES = [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]

# Byte offsets of the f16 scale fields inside each block type (d first, then dmin / m when present).
F16_FIELDS = {
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q8_0: [0],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
}

# Special f16 scale bit patterns: zero, negative zero, smallest and largest subnormal, largest
# finite, negative, one, infinity.
SPECIAL_F16 = [0x0000, 0x8000, 0x0001, 0x03FF, 0x7BFF, 0xBC00, 0x3C00, 0x7C00]


def f16_bits(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float16).view(np.uint16)


def random_blocks(rng: np.random.RandomState, qtype: T, n_random: int) -> np.ndarray:
    """Random quant bits with realistic scales, followed by the special-case blocks."""
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rng.randint(0, 256, size=(n_random, type_size)).astype(np.uint8)
    for off in F16_FIELDS[qtype]:
        # Scales of weights: magnitudes 1e-4 .. 1e-1, either sign for d-like fields.
        scale = np.exp(rng.uniform(np.log(1e-4), np.log(1e-1), size=n_random)) * rng.choice([-1.0, 1.0], size=n_random)
        blocks[:, off : off + 2] = f16_bits(scale.astype(np.float32)).view(np.uint8).reshape(n_random, 2)
    specials = []
    # All-zero block.
    specials.append(np.zeros(type_size, dtype=np.uint8))
    # All quant bits set, each special scale in every f16 field.
    for bits in SPECIAL_F16:
        b = np.full(type_size, 0xFF, dtype=np.uint8)
        if qtype == T.Q6_K:
            b[192:208] = rng.randint(0, 256, size=16).astype(np.uint8)  # int8 scales of both signs
        for off in F16_FIELDS[qtype]:
            b[off : off + 2] = np.array([bits], dtype=np.uint16).view(np.uint8)
        specials.append(b)
    # Random quant bits with each special scale.
    for bits in SPECIAL_F16:
        b = rng.randint(0, 256, size=type_size).astype(np.uint8)
        for off in F16_FIELDS[qtype]:
            b[off : off + 2] = np.array([bits], dtype=np.uint16).view(np.uint8)
        specials.append(b)
    return np.concatenate([blocks, np.stack(specials)], axis=0)


def float_elements(rng: np.random.RandomState, qtype: T) -> np.ndarray:
    """Raw F32/F16/BF16 elements: random bit patterns (every exponent) plus special values."""
    if qtype == T.F32:
        normal = rng.standard_normal(256).astype(np.float32).view(np.uint32)
        bits = rng.randint(0, 2**32, size=256, dtype=np.uint64).astype(np.uint32)
        special = np.array([0, 0x80000000, 1, 0x007FFFFF, 0x7F7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001], dtype=np.uint32)
        return np.concatenate([normal, bits, special]).view(np.uint8)
    # 16-bit types: 4096 random bit patterns (every exponent) plus special values: zeros,
    # subnormals, largest finite, infinities, quiet and signaling NaNs with payloads.
    bits = rng.randint(0, 2**16, size=4096).astype(np.uint16)
    if qtype == T.F16:
        special = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFE01, 0x7FFF]
    else:
        special = [0x0000, 0x8000, 0x0001, 0x8001, 0x007F, 0x0080, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0xFFC1, 0x7FFF]
    return np.concatenate([bits, np.array(special, dtype=np.uint16)]).view(np.uint8)


def source_rows(rng: np.random.RandomState, row_len: int, n_gauss: int) -> np.ndarray:
    """Rows of f32 values to quantize: Gaussian rows of varied magnitude, then special rows."""
    rows = [rng.standard_normal(row_len).astype(np.float32) * np.float32(s) for s in np.exp(rng.uniform(-8, 4, size=n_gauss))]
    # Heavy-tailed row (outliers in some blocks).
    rows.append((rng.standard_normal(row_len) ** 3).astype(np.float32))
    zeros = np.zeros(row_len, dtype=np.float32)
    rows.append(zeros)
    rows.append(-zeros)
    # Ties: +-max in the same block (argmax picks the first), constant blocks, halves for rounding.
    tie = rng.standard_normal(row_len).astype(np.float32)
    tie[0::32] = 3.0
    tie[5::32] = -3.0
    tie[40::64] = -3.0  # in odd blocks the negative one comes first
    rows.append(tie)
    rows.append(np.full(row_len, 0.75, dtype=np.float32))
    rows.append(np.full(row_len, -1.5, dtype=np.float32))
    halves = (rng.randint(-254, 255, size=row_len) / 2).astype(np.float32)
    halves[0::32] = 127.0  # Q8_0: d = 1, so the halves hit np_roundf's ties exactly
    rows.append(halves)
    # Tiny (subnormal f16 scales) and huge (f16 scale overflows to infinity) values.
    rows.append(rng.standard_normal(row_len).astype(np.float32) * np.float32(1e-6))
    rows.append(rng.standard_normal(row_len).astype(np.float32) * np.float32(1e-9))
    rows.append(rng.standard_normal(row_len).astype(np.float32) * np.float32(3e6))
    # Non-negative and non-positive rows (Q4_1/Q5_1 minimum handling).
    rows.append(np.abs(rng.standard_normal(row_len)).astype(np.float32))
    rows.append(-np.abs(rng.standard_normal(row_len)).astype(np.float32))
    # Negative zeros mixed with values.
    mixed = rng.standard_normal(row_len).astype(np.float32)
    mixed[::3] = -0.0
    rows.append(mixed)
    return np.stack(rows)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    manifest: dict = {
        "generator": "scripts/make_quant_fixtures.py",
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "gguf": _gguf_version()},
        "dequantize": {},
        "quantize": {},
    }
    for i, qtype in enumerate(DEQUANT_TYPES):
        rng = np.random.RandomState(1000 + i)
        if qtype in (T.F32, T.F16, T.BF16):
            data = float_elements(rng, qtype)
        else:
            block_size, _ = gguf.GGML_QUANT_SIZES[qtype]
            data = random_blocks(rng, qtype, 48 if block_size == 32 else 12).reshape(-1)
        with np.errstate(all="ignore"):
            deq = quants.dequantize(data, qtype).astype(np.float32, copy=False)
        (OUT / f"{qtype.name}.blocks.bin").write_bytes(data.tobytes())
        (OUT / f"{qtype.name}.deq.f32").write_bytes(deq.astype("<f4").tobytes())
        manifest["dequantize"][qtype.name] = {"bytes": int(data.size), "values": int(deq.size)}
    # One set of source rows, quantized to every type gguf-py can produce.
    row_len = 256
    src = source_rows(np.random.RandomState(2000), row_len, 12)
    (OUT / "quantize.src.f32").write_bytes(src.astype("<f4").tobytes())
    manifest["quantize_source"] = {"file": "quantize.src.f32", "rows": int(src.shape[0]), "row_len": row_len}
    for qtype in QUANT_TYPES:
        with np.errstate(all="ignore"):
            q = quants.quantize(src, qtype)
        (OUT / f"{qtype.name}.quant.bin").write_bytes(np.ascontiguousarray(q).view(np.uint8).tobytes())
        manifest["quantize"][qtype.name] = {"bytes": int(q.nbytes)}
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _gguf_version() -> str:
    from importlib.metadata import version

    return version("gguf")


if __name__ == "__main__":
    main()
