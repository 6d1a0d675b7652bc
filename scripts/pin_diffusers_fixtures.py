#!/usr/bin/env python3
"""Pins what tests/test_diffusers.cpp compares the engine with: diffusers' own outputs.

Why pinned and not run inside the test: CI is a fresh 2-core machine with Debian packages and PyPI;
PyTorch + diffusers would add a large install to every run for numbers that only change when this
script changes. So this script runs diffusers once and commits its inputs and outputs; the C++ test
reads them. Re-run it (after building the engine, which step 4 needs) with:

    python3 -m venv --system-site-packages /tmp/dv          # Debian: apt-get install python3-torch
    /tmp/dv/bin/pip install diffusers==0.27.2 huggingface_hub==0.23.4 safetensors==0.4.3
    /tmp/dv/bin/python scripts/pin_diffusers_fixtures.py     # checked with torch 1.13 (Debian 12)

Weights are not random draws but a formula both languages evaluate bit for bit (fixture_value,
mirrored by tests/test_diffusers.cpp), so the 35.7M-parameter CIFAR-10 model needs no weights file:
for the tensor called NAME (its diffusers name) with shape S (diffusers layout) and row-major index i,
    z = splitmix64(fnv1a64(NAME) + (i + 1) * 0x9E3779B97F4A7C15),  r = 2 * (z >> 11) / 2^53 - 1
    GroupNorm weights 1 + 0.2 r, other vectors 0.1 r, matrices and kernels r * sqrt(3 / fan_in).

Writes tests/fixtures/diffusers/:
  small/             a DDIMPipeline-style folder saved by diffusers (model_index.json, unet/, scheduler/):
                     16x16, 2 levels, attention heads of 8 channels, learned range, v prediction
  small_io.safetensors      x, t (NHWC inputs) and out: UNet2DModel's output, NHWC
  small_ddim.safetensors    x_T and DDIM (eta 0) results over 20 steps: trailing / leading spacing
  cifar10_config.json       google/ddpm-cifar10-32's UNet2DModel configuration (as saved by diffusers)
  cifar10_params.json       its state-dict names and shapes, in order
  cifar10_io.safetensors    x, t, out for the formula weights
  schedules.safetensors     diffusers' alphas_cumprod (float32) for each beta_schedule, T = 1000
  export_*                  step 4: the engine's export of a model of its own, loaded by diffusers
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import safetensors.torch  # noqa: F401  (diffusers save_pretrained needs it imported)
from safetensors.numpy import save_file
import diffusers
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "diffusers")
M64 = (1 << 64) - 1


def fnv1a64(text):
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) & M64
    return h


def fixture_value(name, shape):
    n = int(np.prod(shape)) if len(shape) else 1
    with np.errstate(over="ignore"):
        z = np.uint64(fnv1a64(name)) + (np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    r = (z >> np.uint64(11)).astype(np.float64) * (2.0 ** -53) * 2.0 - 1.0
    if len(shape) == 1:
        v = 1.0 + 0.2 * r if ("norm" in name and name.endswith(".weight")) else 0.1 * r
    else:
        v = r * math.sqrt(3.0 / int(np.prod(shape[1:])))
    return v.astype(np.float32).reshape(shape)


def fill(model):
    with torch.no_grad():
        for name, p in model.state_dict().items():
            p.copy_(torch.from_numpy(fixture_value(name, tuple(p.shape))))


def nhwc(t):
    return np.ascontiguousarray(t.detach().numpy().transpose(0, 2, 3, 1))


def run(model, x_nhwc, t):
    with torch.no_grad():
        x = torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2).copy())
        return nhwc(model(x, torch.from_numpy(t)).sample)


def inputs(rng, n, size, channels, steps):
    x = rng.standard_normal((n, size, size, channels)).astype(np.float32)
    return x, np.array(steps, dtype=np.float32)


SMALL = dict(sample_size=16, in_channels=3, out_channels=6, block_out_channels=(16, 32), layers_per_block=1,
             down_block_types=("AttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "AttnUpBlock2D"),
             attention_head_dim=8, norm_num_groups=4, norm_eps=1e-5, flip_sin_to_cos=True, freq_shift=0,
             downsample_padding=1, dropout=0.0)
SMALL_SCHEDULER = dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                       clip_sample=False, set_alpha_to_one=True, steps_offset=0, timestep_spacing="trailing")
# google/ddpm-cifar10-32's unet/config.json, field for field.
CIFAR10 = dict(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256),
               layers_per_block=2, down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
               up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), attention_head_dim=None,
               norm_num_groups=32, norm_eps=1e-6, flip_sin_to_cos=False, freq_shift=1, downsample_padding=0,
               center_input_sample=False, act_fn="silu", mid_block_scale_factor=1, time_embedding_type="positional")


def ddim_loop(unet, scheduler, x_T, steps, clip):
    scheduler.set_timesteps(steps)
    x = torch.from_numpy(x_T.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        for t in scheduler.timesteps:
            out = unet(x, t).sample[:, : x.shape[1]]  # learned range: the first C channels are v
            x = scheduler.step(out, t, x, eta=0.0, use_clipped_model_output=True).prev_sample
    return nhwc(x), np.array(scheduler.timesteps.numpy(), dtype=np.float32)  # the engine reads F32, F64, BF16


def pin_small(rng):
    unet = UNet2DModel(**SMALL)
    fill(unet)
    scheduler = DDIMScheduler(**SMALL_SCHEDULER)
    folder = os.path.join(OUT, "small")
    unet.save_pretrained(os.path.join(folder, "unet"))
    scheduler.save_pretrained(os.path.join(folder, "scheduler"))
    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump({"_class_name": "DDIMPipeline", "_diffusers_version": diffusers.__version__,
                   "scheduler": ["diffusers", "DDIMScheduler"], "unet": ["diffusers", "UNet2DModel"]}, f, indent=2)
    x, t = inputs(rng, 3, 16, 3, [0, 421, 999])
    save_file({"x": x, "t": t, "out": run(unet, x, t)}, os.path.join(OUT, "small_io.safetensors"))

    x_T = rng.standard_normal((2, 16, 16, 3)).astype(np.float32)
    trailing, trailing_steps = ddim_loop(unet, DDIMScheduler(**SMALL_SCHEDULER), x_T, 20, False)
    leading_cfg = dict(SMALL_SCHEDULER, timestep_spacing="leading", clip_sample=True)
    leading, leading_steps = ddim_loop(unet, DDIMScheduler(**leading_cfg), x_T, 20, True)
    save_file({"x_T": x_T, "trailing": trailing, "trailing_steps": trailing_steps, "leading": leading,
               "leading_steps": leading_steps}, os.path.join(OUT, "small_ddim.safetensors"))


def pin_cifar10(rng):
    unet = UNet2DModel(**CIFAR10)
    fill(unet)
    with open(os.path.join(OUT, "cifar10_config.json"), "w") as f:
        json.dump({"_class_name": "UNet2DModel", **dict(unet.config)}, f, indent=2)
    with open(os.path.join(OUT, "cifar10_params.json"), "w") as f:
        json.dump([[n, list(p.shape)] for n, p in unet.state_dict().items()], f)
    x, t = inputs(rng, 2, 32, 3, [3, 777])
    save_file({"x": x, "t": t, "out": run(unet, x, t)}, os.path.join(OUT, "cifar10_io.safetensors"))
    print("cifar10 parameters:", sum(p.numel() for p in unet.parameters()))


def pin_schedules():
    tables = {}
    for kind in ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"):
        tables[kind] = DDPMScheduler(num_train_timesteps=1000, beta_schedule=kind).alphas_cumprod.numpy()
    tables["linear_scaled_T200"] = DDPMScheduler(num_train_timesteps=200, beta_start=5e-4, beta_end=0.1).alphas_cumprod.numpy()
    save_file(tables, os.path.join(OUT, "schedules.safetensors"))


def pin_export(rng):
    """The engine writes its export (a hidden test case), diffusers loads it and runs it."""
    tests = os.path.join(ROOT, "build", "tests", "ddpm_tests")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, DDPM_DIFFUSERS_EXPORT_DIR=tmp)
        subprocess.run([tests, "[.diffusers-export-pin]"], check=True, env=env)
        pipe = DDPMPipeline.from_pretrained(tmp)  # model_index.json, unet/, scheduler/
        unet, info = UNet2DModel.from_pretrained(os.path.join(tmp, "unet"), output_loading_info=True)
        assert not any(info.values()), info  # every tensor present, none unexpected, no shape mismatch
        scheduler = DDPMScheduler.from_pretrained(os.path.join(tmp, "scheduler"))
        assert isinstance(pipe.unet, UNet2DModel) and isinstance(pipe.scheduler, DDPMScheduler)
        x, t = inputs(rng, 2, 8, 1, [5, 180])
        save_file({"x": x, "t": t, "out": run(unet, x, t), "alphas_cumprod": scheduler.alphas_cumprod.numpy()},
                  os.path.join(OUT, "export_io.safetensors"))
        for part in ("unet/config.json", "scheduler/scheduler_config.json"):
            with open(os.path.join(tmp, part)) as f:
                pinned = json.load(f)
            with open(os.path.join(OUT, "export_" + part.replace("/", "_")), "w") as f:
                json.dump(pinned, f, indent=2)


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240601)
    pin_small(rng)
    pin_schedules()
    pin_cifar10(rng)
    if "--no-export" not in sys.argv:
        pin_export(rng)
    print("diffusers", diffusers.__version__, "torch", torch.__version__, "->", OUT)


if __name__ == "__main__":
    main()
