#!/usr/bin/env python3
"""Largest absolute difference between the latest checkpoints of two run directories (every
tensor: parameters, EMA, Adam moments); exits 1 when it exceeds the given tolerance.

    python3 scripts/compare_checkpoints.py RUN_A RUN_B [tolerance=0]
"""
import json
import struct
import sys

DTYPES = {"F32": ("f", 4), "F64": ("d", 8)}


def latest_tensors(run):
    with open(f"{run}/checkpoint.json") as f:
        state = json.load(f)
    with open(f"{run}/{state['weights']}", "rb") as f:
        blob = f.read()
    header_size = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + header_size])
    data = blob[8 + header_size:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        code, size = DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        tensors[name] = struct.unpack(f"<{(end - begin) // size}{code}", data[begin:end])
    return tensors


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    tolerance = float(sys.argv[3]) if len(sys.argv) == 4 else 0.0
    a, b = latest_tensors(sys.argv[1]), latest_tensors(sys.argv[2])
    if a.keys() != b.keys():
        sys.exit(f"different tensors: {sorted(a.keys() ^ b.keys())[:5]}")
    worst = max((abs(x - y) for name in a for x, y in zip(a[name], b[name])), default=0.0)
    print(f"largest difference over {len(a)} tensors: {worst:.3g} (tolerance {tolerance:g})")
    sys.exit(0 if worst <= tolerance else 1)


if __name__ == "__main__":
    main()
