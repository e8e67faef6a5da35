#!/usr/bin/env python3
"""An independent reader of Megatron-LM indexed datasets (PREFIX.bin / PREFIX.idx), written from
the format description (NVIDIA/Megatron-LM megatron/core/datasets/indexed_dataset.py), not from kiln's
code. Uses numpy only.

Usage: megatron_reader.py PREFIX
Prints one JSON object: {"dtype": ..., "sequences": [[ids...], ...], "document_indices": [...]}.
Exits non-zero if the files are inconsistent.
"""
import json
import struct
import sys

import numpy as np

DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64, 7: np.float32, 8: np.uint16}


def read(prefix):
    with open(prefix + ".idx", "rb") as f:
        idx = f.read()
    assert idx[:9] == b"MMIDIDX\x00\x00", "bad magic"
    (version,) = struct.unpack("<Q", idx[9:17])
    assert version == 1, f"version {version}"
    (code,) = struct.unpack("<B", idx[17:18])
    dtype = np.dtype(DTYPES[code]).newbyteorder("<")
    n, d = struct.unpack("<QQ", idx[18:34])
    pos = 34
    lengths = np.frombuffer(idx, dtype="<i4", count=n, offset=pos)
    pos += lengths.nbytes
    offsets = np.frombuffer(idx, dtype="<i8", count=n, offset=pos)
    pos += offsets.nbytes
    docs = np.frombuffer(idx, dtype="<i8", count=d, offset=pos)
    pos += docs.nbytes
    assert pos == len(idx), f"{len(idx) - pos} trailing bytes in .idx"
    data = np.memmap(prefix + ".bin", dtype=dtype, mode="r") if n and lengths.sum() else np.zeros(0, dtype)
    seqs = []
    for length, offset in zip(lengths, offsets):
        start = int(offset) // dtype.itemsize
        seqs.append(data[start:start + int(length)].astype(np.int64).tolist())
    return {"dtype": dtype.name, "sequences": seqs, "document_indices": docs.tolist()}


if __name__ == "__main__":
    json.dump(read(sys.argv[1]), sys.stdout)
