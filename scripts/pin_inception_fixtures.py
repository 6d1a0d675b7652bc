#!/usr/bin/env python3
"""Pins the fixtures of tests/test_inception.cpp: pytorch-fid's Inception-v3 run on random weights.

The real weights (95 MB) cannot be committed, so both sides generate the same random weights:
tensor k of the state dict (names sorted) is filled with Philox4x32-10 uniforms of
(seed 20151205, stream k) in PyTorch's element order, value = low + (high - low) u in float64,
rounded to float32 (u is engine/philox.h's uniform, exact in float32; see RANGES below). The test
regenerates them in C++ the same way.

Steps: build pytorch-fid's network (its weight download patched out), load the generated state
dict, save it as a .pth, run scripts/convert_inception.py on it, run pytorch-fid's InceptionV3 on
Philox images and write
  tests/fixtures/inception/expected.safetensors   inputs, pool features [N, 2048], fc logits [N, 1008]
  tests/fixtures/inception/converted.json         per converted tensor: shape and an order-sensitive
                                                  checksum; the converted file's SHA-256

Needs torch, torchvision, numpy and pytorch-fid (pip install --no-deps pytorch-fid).
    python3 scripts/pin_inception_fixtures.py
"""
import hashlib
import json
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "inception")
sys.path.insert(0, HERE)
import convert_inception  # noqa: E402

SEED = 20151205
IMAGE_SEED = 7
# (height, width, channels, batch): the test's cases.
CASES = [(28, 28, 1, 2), (32, 32, 3, 2), (64, 64, 3, 1)]

# ---- Philox4x32-10, as engine/philox.h ----
M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK = np.uint64(0xFFFFFFFF)


def philox_blocks(seed, stream, blocks):
    """Philox4x32-10 words [len(blocks), 4] for counters {block lo, block hi, stream lo, stream hi}."""
    blocks = blocks.astype(np.uint64)
    c0 = blocks & MASK
    c1 = blocks >> np.uint64(32)
    c2 = np.full_like(c0, stream & 0xFFFFFFFF)
    c3 = np.full_like(c0, stream >> 32)
    k0, k1 = seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF
    for _ in range(10):
        p0 = M0 * c0
        p1 = M1 * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & MASK
        hi1, lo1 = p1 >> np.uint64(32), p1 & MASK
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
        k0 = (k0 + W0) & 0xFFFFFFFF
        k1 = (k1 + W1) & 0xFFFFFFFF
    return np.stack([c0, c1, c2, c3], axis=1)


def uniform(seed, stream, count):
    """Elements 0..count-1 of the uniform draw (seed, stream): float32 in (0, 1), top 24 bits."""
    words = philox_blocks(seed, stream, np.arange((count + 3) // 4)).reshape(-1)[:count]
    return ((words >> np.uint64(8)).astype(np.float32) + np.float32(0.5)) * np.float32(1.0 / 16777216.0)


def uniform_range(seed, stream, shape, low, high):
    u = uniform(seed, stream, int(np.prod(shape))).astype(np.float64)
    return (low + (high - low) * u).astype(np.float32).reshape(shape)


def weight_range(name, shape):
    """[low, high) of a tensor's uniform draw. Mirrored by tests/test_inception.cpp."""
    if name.endswith(".conv.weight"):
        fan_in = shape[1] * shape[2] * shape[3]
        a = (6.0 / fan_in) ** 0.5  # He-uniform: ReLU after BN keeps activations O(1)
        return -a, a
    if name.endswith(".bn.weight"):
        return 0.8, 1.2
    if name.endswith(".bn.bias") or name.endswith(".bn.running_mean"):
        return -0.2, 0.2
    if name.endswith(".bn.running_var"):
        return 0.5, 1.5
    if name == "fc.weight":
        a = (3.0 / shape[1]) ** 0.5
        return -a, a
    if name == "fc.bias":
        return -0.1, 0.1
    raise SystemExit(f"pin_inception_fixtures: no range for {name}")


def random_state_dict(template):
    import torch

    names = sorted(n for n in template if not n.endswith("num_batches_tracked"))
    state = {}
    for stream, name in enumerate(names):
        shape = tuple(template[name].shape)
        low, high = weight_range(name, shape)
        state[name] = torch.from_numpy(uniform_range(SEED, stream, shape, low, high))
    return state


def checksum(array):
    """sum_i x_i * (i % 7 + 1) in float64 over the flat array: changes when elements move."""
    flat = array.reshape(-1).astype(np.float64)
    return float(np.dot(flat, (np.arange(flat.size) % 7 + 1).astype(np.float64)))


def write_fixture_safetensors(path, tensors, metadata):
    convert_inception.write_safetensors(path, [(n, np.ascontiguousarray(a, dtype="<f4")) for n, a in tensors], metadata)


def main():
    import torch
    import torchvision
    import pytorch_fid
    import pytorch_fid.inception as fid

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    # The template of names and shapes: the FID network, built without its download.
    holder = {}
    fid.load_state_dict_from_url = lambda *args, **kwargs: holder["state"]
    # FIDInceptionA/C/E_1/E_2 change forwards only: torchvision's state dict has the same names.
    template = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, init_weights=False).state_dict()
    holder["state"] = random_state_dict(template)

    full = fid.fid_inception_v3().eval()  # loads holder["state"] (strict)
    model = fid.InceptionV3([fid.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()

    with tempfile.TemporaryDirectory() as tmp:
        pth = os.path.join(tmp, "random_inception.pth")
        torch.save(holder["state"], pth)
        converted = os.path.join(tmp, "random_inception.safetensors")
        source_sha, _ = convert_inception.convert(pth, converted)
        converted_sha = convert_inception.sha256_of(converted)
        # Read the converted tensors back (our own writer's format) for their checksums.
        with open(converted, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
            data = f.read()
        summary = {}
        for name, entry in sorted(header.items()):
            if name == "__metadata__":
                continue
            begin, end = entry["data_offsets"]
            array = np.frombuffer(data[begin:end], dtype="<f4").reshape(entry["shape"])
            summary[name] = {"shape": entry["shape"], "checksum": checksum(array)}

    tensors, stats = [], []
    with torch.no_grad():
        for index, (h, w, c, batch) in enumerate(CASES):
            # NHWC images in (0, 1); the engine sees 2u - 1 (exact in float32).
            u = uniform(IMAGE_SEED, index, batch * h * w * c).reshape(batch, h, w, c)
            x = torch.from_numpy(u).permute(0, 3, 1, 2).contiguous()
            if c == 1:
                x = x.repeat(1, 3, 1, 1)  # grayscale as RGB, as pytorch-fid's loader does
            features = model(x)[0].flatten(1)
            logits = full.fc(features)
            tensors += [(f"case{index}.images", 2.0 * u - 1.0), (f"case{index}.features", features.numpy()),
                        (f"case{index}.logits", logits.numpy())]
            stats.append(f"case{index} {h}x{w}x{c}: features mean {features.mean():.3f} std {features.std():.3f} "
                         f"max {features.max():.3f}; logits std {logits.std():.3f}")
    os.makedirs(OUT_DIR, exist_ok=True)
    versions = f"torch {torch.__version__}, torchvision {torchvision.__version__}, pytorch-fid {pytorch_fid.__version__}"
    write_fixture_safetensors(os.path.join(OUT_DIR, "expected.safetensors"), tensors,
                              {"seed": str(SEED), "image_seed": str(IMAGE_SEED), "produced_by": versions,
                               "converted_sha256": converted_sha, "source_sha256": source_sha})
    with open(os.path.join(OUT_DIR, "converted.json"), "w") as f:
        json.dump({"seed": SEED, "converted_sha256": converted_sha, "source_sha256": source_sha, "tensors": summary},
                  f, indent=1, sort_keys=True)
        f.write("\n")
    print("\n".join(stats))
    print(f"converted file sha256 {converted_sha}; {len(summary)} tensors; {versions}")


if __name__ == "__main__":
    main()
