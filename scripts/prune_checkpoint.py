#!/usr/bin/env python3
"""Copies a run directory's checkpoint keeping only the tensors sampling and evaluation read.

    python3 scripts/prune_checkpoint.py RUN_DIR OUT_DIR [--keep model.]

OUT_DIR gets config.json, checkpoint.json and the weights file with only the tensors whose names
start with the kept prefixes (default "model.": no EMA, no Adam moments), the metadata unchanged.
The engine loads such a run for `ddpm classifier eval`, `--features classifier:OUT_DIR` and
`ddpm sample`/`eval` with use_ema=false; it cannot be resumed. Needs only the standard library.
"""
import argparse
import json
import os
import shutil
import struct


def read_safetensors(path):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    return header, data


def write_safetensors(path, header, data, keep):
    entries, out, offset = {}, bytearray(), 0
    names = [n for n in header if n != "__metadata__" and n.startswith(tuple(keep))]
    for name in sorted(names, key=lambda n: header[n]["data_offsets"][0]):
        begin, end = header[name]["data_offsets"]
        out += data[begin:end]
        entries[name] = dict(header[name], data_offsets=[offset, offset + end - begin])
        offset += end - begin
    if "__metadata__" in header:
        entries["__metadata__"] = header["__metadata__"]
    encoded = json.dumps(entries, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded + bytes(out))
    os.replace(path + ".tmp", path)
    return len(names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("out")
    parser.add_argument("--keep", action="append", default=None, help="tensor name prefix to keep (repeatable)")
    args = parser.parse_args()
    keep = args.keep or ["model."]
    state = json.load(open(os.path.join(args.run, "checkpoint.json")))
    os.makedirs(args.out, exist_ok=True)
    header, data = read_safetensors(os.path.join(args.run, state["weights"]))
    kept = write_safetensors(os.path.join(args.out, state["weights"]), header, data, keep)
    shutil.copy(os.path.join(args.run, "config.json"), os.path.join(args.out, "config.json"))
    with open(os.path.join(args.out, "checkpoint.json"), "w") as f:
        json.dump(state, f, indent=2)
        f.write("\n")
    print(f"{args.out}: {kept} tensors kept ({', '.join(keep)})")


if __name__ == "__main__":
    main()
