#!/usr/bin/env python3
"""Converts pytorch-fid's Inception-v3 weights (pt_inception-2015-12-05-6726825d.pth) into the
safetensors file that `ddpm eval --features inception:FILE` reads.

    python3 scripts/convert_inception.py pt_inception-2015-12-05-6726825d.pth inception-fid.safetensors

What changes and what does not:
  - names stay PyTorch's (e.g. Mixed_5b.branch1x1.conv.weight, Mixed_5b.branch1x1.bn.running_var,
    fc.weight); the BatchNorm counters (num_batches_tracked) are dropped;
  - convolution weights go from PyTorch's [Cout, Cin, KH, KW] to the engine's NHWC filter layout
    [Cout, KH, KW, Cin]; every other tensor is copied as it is;
  - everything is stored as float32;
  - batch norm is NOT folded here: the engine folds each BN (eps 0.001) into its convolution in
    float64 when it loads the file (models/inception_v3.cpp), so the file stays a plain, checkable
    copy of the original numbers;
  - the metadata records the SHA-256 of the .pth ("source_sha256"), which names the feature space
    in eval.json ("inception-v3-fid sha256:<hex>").

Needs PyTorch (to unpickle the .pth). The engine checks every name, shape and dtype on load.
"""
import argparse
import hashlib
import json
import os
import struct
import sys

FORMAT = "ddpm-inception-v3-fid/1"


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def engine_layout(state_dict):
    """[(name, float32 numpy array)] in the engine's layout, sorted by name."""
    import numpy as np

    out = []
    for name, tensor in state_dict.items():
        if name.endswith("num_batches_tracked"):
            continue
        array = tensor.detach().cpu().float().numpy()
        if name.endswith(".conv.weight"):
            if array.ndim != 4:
                raise SystemExit(f"convert_inception: {name} has shape {list(array.shape)}; a convolution weight "
                                 "should be [Cout, Cin, KH, KW]")
            array = array.transpose(0, 2, 3, 1)  # [Cout, KH, KW, Cin]
        out.append((name, np.ascontiguousarray(array, dtype="<f4")))
    out.sort(key=lambda item: item[0])
    return out


def write_safetensors(path, tensors, metadata):
    """The safetensors format: u64 header length, JSON header, raw little-endian data."""
    header = {"__metadata__": metadata}
    offset = 0
    for name, array in tensors:
        size = array.nbytes
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * ((8 - len(blob) % 8) % 8)  # keep the data 8-byte aligned
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for _, array in tensors:
            f.write(array.tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def convert(pth_path, out_path):
    import torch

    state_dict = torch.load(pth_path, map_location="cpu")
    if not isinstance(state_dict, dict) or "fc.weight" not in state_dict or "Conv2d_1a_3x3.conv.weight" not in state_dict:
        raise SystemExit(f"convert_inception: {pth_path} is not an Inception-v3 state dict (no fc.weight or "
                         "Conv2d_1a_3x3.conv.weight); pass pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
    tensors = engine_layout(state_dict)
    source = sha256_of(pth_path)
    write_safetensors(out_path, tensors, {"format": FORMAT, "source_sha256": source,
                                          "source_file": os.path.basename(pth_path)})
    return source, len(tensors)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pth", help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
    parser.add_argument("out", help="the safetensors file to write")
    args = parser.parse_args(argv)
    source, count = convert(args.pth, args.out)
    print(f"wrote {args.out}: {count} tensors, source sha256 {source}")


if __name__ == "__main__":
    main(sys.argv[1:])
