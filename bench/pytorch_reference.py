#!/usr/bin/env python3
"""PyTorch reference for the engine's DDPM UNet: how fast PyTorch runs a training step and a
sampling step of the same network, for side-by-side comparison with the engine.

The network is built from one of our JSON configs (configs/*.json) exactly as models/unet.cpp
builds it (tools/factories.cpp maps the config): same layer order, channel counts, GroupNorm groups
(eps 1e-6), attention resolutions and heads, dropout, output channels (2 C for a learned_range
variance) and initialization. Its parameter count is checked against the engine's.

What is timed, per variant (eager fp32, channels_last, TF32, bf16 autocast, torch.compile ...):

  train_step   x0 ~ U[-1, 1], t ~ U{0, ..., T-1}, eps ~ N(0, 1),
               x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (linear betas 1e-4 .. 0.02);
               MSE(model(x_t, t), eps), backward, gradient-norm clipping at train.grad_clip (the
               engine's step clips; --no-grad-clip leaves it out), Adam (fused on CUDA where this
               torch has it), and an EMA update of a shadow copy of the weights (train.ema_decay).
  sample_step  one ancestral reverse step at a fixed t (--t, default 500) in eval mode under
               inference_mode: x <- (x - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t)
               + sqrt(beta_t) z (fixed_large variance).
  sample_run   a whole ancestral chain: every step of the diffusion, from x_T ~ N(0, I), with each
               step's own coefficients (the engine's sample_run); timed once after a warm-up step.
  largest_batch (CUDA only) the largest batch whose training step fits on the device, found as
               bench/largest_batch.h finds the engine's: doubling from --batch, then bisecting to
               1/32 of the answer. Eager variants only: a compiled step recompiles per shape.
  attention    (CUDA only) torch.nn.functional.scaled_dot_product_attention alone, bf16, on
               q, k, v [batch, heads, tokens, head_dim] at every attention shape of the config's
               UNet; forward, and forward+backward, for each SDPA backend (flash, efficient,
               cudnn, math). --variants does not apply: the backend is the "variant".

Timing: warm-up iterations first (compiled variants: the first call, which compiles, is
reported as compile_s, then at least 5 more warm-up calls), then --iters timed iterations.
CPU: time.perf_counter around each iteration. CUDA: CUDA events around each iteration,
synchronized after each. Reported: median ("ms") and minimum ("ms_min") in milliseconds.

On CUDA, train_step lines also carry peak_bytes: torch.cuda.max_memory_allocated over the warm-up
and timed steps, after reset_peak_memory_stats (weights, optimizer state, EMA and activations).

Output: one JSON object per line on stdout; a variant that cannot run here (feature missing from
this torch, or an exception) gives a line with "skipped": "reason" and no "ms". Progress and
notes go to stderr.

Runs under torch 1.13 (CPU) and torch 2.x (CPU or CUDA). Debian's torch takes its BLAS from the
system OpenBLAS, which picks slow generic kernels on CPUs it does not recognize; the engine sets
OPENBLAS_CORETYPE itself in that case, so set it here too for a like-for-like CPU comparison
(e.g. OPENBLAS_CORETYPE=SkylakeX on an AVX-512 machine). Examples:

  python3 bench/pytorch_reference.py --config configs/quickstart.json --device cpu \
      --batch 32 --cases train,sample --iters 10 --warmup 3
  python3 bench/pytorch_reference.py --config configs/cifar10_ddpm.json --device cuda \
      --batch 128 --cases train,sample,attention --iters 20 --warmup 5 --variants all
"""
import argparse
import contextlib
import dataclasses
import gc
import inspect
import json
import math
import os
import re
import statistics
import sys
import time
import warnings
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

# The engine's parameter counts (`ddpm info --config ...`), by config file stem.
EXPECTED_PARAMS = {"quickstart": 1112801, "cifar10_ddpm": 35746307}

# The defaults of tools/config.cpp for the keys this script reads.
DEFAULTS = {
    "data": {"dataset": "fashion-mnist", "channels": 3},
    "model": {"type": "unet", "base_channels": 32, "channel_mult": [1, 2, 2], "num_res_blocks": 1,
              "attention_resolutions": [7], "heads": 1, "dropout": 0.1, "groups": 32},
    "diffusion": {"steps": 1000, "schedule": "linear", "variance": "fixed_small"},
    "train": {"lr": 0.0002, "grad_clip": 1.0, "ema_decay": 0.9999},
}

# Image side and channels of the built-in datasets (tools/data/*).
DATASET_SHAPES = {"fashion-mnist": (28, 1), "mnist": (28, 1), "cifar10": (32, 3)}

GROUP_NORM_EPS = 1e-6  # engine/nn/layers.h: GroupNorm's default, used by every UNet norm


def note(*parts):
    print(*parts, file=sys.stderr, flush=True)


def emit(record):
    print(json.dumps(record), flush=True)


# ---- config -----------------------------------------------------------------------------------

@dataclasses.dataclass
class UNetSpec:
    resolution: int
    in_channels: int
    out_channels: int
    base_channels: int
    channel_mult: List[int]
    num_res_blocks: int
    attention_resolutions: List[int]
    heads: int
    dropout: float
    groups: int


@dataclasses.dataclass
class RunConfig:
    name: str  # the config file's stem
    unet: UNetSpec
    steps: int  # diffusion steps T
    lr: float
    grad_clip: float
    ema_decay: float


def load_config(path, resolution=None, channels=None):
    with open(path) as f:
        raw = json.load(f)
    cfg = {section: {**values, **raw.get(section, {})} for section, values in DEFAULTS.items()}
    m, d = cfg["model"], cfg["diffusion"]
    if m["type"] != "unet":
        sys.exit(f"{path}: model.type is {m['type']!r}; this benchmark builds the UNet only")
    side, chans = DATASET_SHAPES.get(cfg["data"]["dataset"], (None, cfg["data"]["channels"]))
    side, chans = resolution or side, channels or chans
    if side is None:
        sys.exit(f"{path}: data.dataset {cfg['data']['dataset']!r} has no fixed image size; give --resolution")
    if d["schedule"] != "linear":
        note(f"note: {path} uses the {d['schedule']!r} schedule; the linear one is timed (same cost)")
    unet = UNetSpec(resolution=side, in_channels=chans,
                    out_channels=2 * chans if d["variance"] == "learned_range" else chans,
                    base_channels=m["base_channels"], channel_mult=list(m["channel_mult"]),
                    num_res_blocks=m["num_res_blocks"], attention_resolutions=list(m["attention_resolutions"]),
                    heads=m["heads"], dropout=float(m["dropout"]), groups=m["groups"])
    t = cfg["train"]
    return RunConfig(name=os.path.splitext(os.path.basename(path))[0], unet=unet, steps=d["steps"],
                     lr=t["lr"], grad_clip=t["grad_clip"], ema_decay=t["ema_decay"])


# ---- the UNet (models/unet.cpp, NCHW here) ----------------------------------------------------

def zero_init(module):
    """Marks a layer that the engine zero-initializes (init_scale 0)."""
    module.zero_init = True
    return module


def timestep_features(t, dim):
    """The sinusoidal embedding [N, dim]: sin(t f_i) then cos(t f_i), f_i = 10000^(-i/(dim/2-1))."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * (-math.log(10000.0) / (half - 1)))
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def attention(q, k, v):
    """softmax(q k^T / sqrt(d)) v over [N, heads, T, d]."""
    if hasattr(F, "scaled_dot_product_attention"):  # torch >= 2.0
        return F.scaled_dot_product_attention(q, k, v)
    weights = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * q.shape[-1] ** -0.5, dim=-1)
    return torch.matmul(weights, v)


class ResBlock(nn.Module):
    """GroupNorm+SiLU -> conv3x3 -> + temb_proj(silu(temb)) -> GroupNorm+SiLU -> dropout ->
    conv3x3 (zero init); plus the input, through a 1x1 conv when the channel count changes."""

    def __init__(self, cin, cout, temb_dim, dropout, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=GROUP_NORM_EPS)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb_proj = nn.Linear(temb_dim, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=GROUP_NORM_EPS)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()  # the engine skips p = 0
        self.conv2 = zero_init(nn.Conv2d(cout, cout, 3, padding=1))
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb_act):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(temb_act)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    """x + proj_out(attention(q, k, v)) over the H*W positions; q, k, v, proj_out are Linear
    over channels (the engine's layout), proj_out zero-initialized, no SiLU after the norm."""

    def __init__(self, channels, heads, groups):
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels do not split into {heads} heads")
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels, eps=GROUP_NORM_EPS)
        self.q = nn.Linear(channels, channels)
        self.k = nn.Linear(channels, channels)
        self.v = nn.Linear(channels, channels)
        self.proj_out = zero_init(nn.Linear(channels, channels))

    def split_heads(self, y):  # [N, T, C] -> [N, heads, T, C / heads]
        n, tokens, c = y.shape
        return y.view(n, tokens, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, x):
        n, c, height, width = x.shape
        h = self.norm(x).permute(0, 2, 3, 1).reshape(n, height * width, c)
        a = attention(self.split_heads(self.q(h)), self.split_heads(self.k(h)), self.split_heads(self.v(h)))
        a = a.transpose(1, 2).reshape(n, height * width, c)
        return x + self.proj_out(a).reshape(n, height, width, c).permute(0, 3, 1, 2)


class Level(nn.Module):
    """One resolution: residual blocks, their attention blocks, and the resampling conv
    (a stride-2 conv "downsample", or "upsample", the conv after nearest 2x upsampling)."""

    def __init__(self):
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()
        self.downsample = None
        self.upsample = None


class UNet(nn.Module):
    def __init__(self, s: UNetSpec):
        super().__init__()
        levels, ch = len(s.channel_mult), s.base_channels
        temb_dim = 4 * ch
        if s.resolution % (1 << (levels - 1)):
            raise ValueError(f"resolution {s.resolution} does not halve {levels - 1} times evenly")
        self.spec = s
        self.conv_in = nn.Conv2d(s.in_channels, ch, 3, padding=1)
        self.temb_dense = nn.ModuleList([nn.Linear(ch, temb_dim), nn.Linear(temb_dim, temb_dim)])

        def block(cin, cout):
            return ResBlock(cin, cout, temb_dim, s.dropout, s.groups)

        skips, cur, res = [ch], ch, s.resolution
        self.down = nn.ModuleList()
        for i, mult in enumerate(s.channel_mult):
            level = Level()
            for _ in range(s.num_res_blocks):
                level.block.append(block(cur, ch * mult))
                cur = ch * mult
                if res in s.attention_resolutions:
                    level.attn.append(AttnBlock(cur, s.heads, s.groups))
                skips.append(cur)
            if i != levels - 1:
                level.downsample = nn.Conv2d(cur, cur, 3, stride=2, padding=1)
                skips.append(cur)
                res //= 2
            self.down.append(level)

        self.mid_block_1 = block(cur, cur)
        self.mid_attn_1 = AttnBlock(cur, s.heads, s.groups)
        self.mid_block_2 = block(cur, cur)

        # Built from the top level down, stored by level index like the down path.
        self.up = nn.ModuleList([Level() for _ in range(levels)])
        for i in reversed(range(levels)):
            level = self.up[i]
            for _ in range(s.num_res_blocks + 1):
                level.block.append(block(cur + skips.pop(), ch * s.channel_mult[i]))
                cur = ch * s.channel_mult[i]
                if res in s.attention_resolutions:
                    level.attn.append(AttnBlock(cur, s.heads, s.groups))
            if i != 0:
                level.upsample = nn.Conv2d(cur, cur, 3, padding=1)
                res *= 2
        self.norm_out = nn.GroupNorm(s.groups, cur, eps=GROUP_NORM_EPS)
        self.conv_out = zero_init(nn.Conv2d(cur, s.out_channels, 3, padding=1))
        self.init_like_engine()

    def init_like_engine(self):
        # Uniform fan_avg variance scaling with scale 1 is Xavier-uniform; biases start at 0.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if getattr(m, "zero_init", False):
                    nn.init.zeros_(m.weight)
                else:
                    nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x, t):
        temb = self.temb_dense[1](F.silu(self.temb_dense[0](timestep_features(t, self.spec.base_channels))))
        temb_act = F.silu(temb)
        h = self.conv_in(x)
        skips = [h]
        for level in self.down:
            for j, res_block in enumerate(level.block):
                h = res_block(h, temb_act)
                if len(level.attn):
                    h = level.attn[j](h)
                skips.append(h)
            if level.downsample is not None:
                h = level.downsample(h)
                skips.append(h)
        h = self.mid_block_2(self.mid_attn_1(self.mid_block_1(h, temb_act)), temb_act)
        for level in reversed(self.up):
            for j, res_block in enumerate(level.block):
                h = res_block(torch.cat([h, skips.pop()], dim=1), temb_act)
                if len(level.attn):
                    h = level.attn[j](h)
            if level.upsample is not None:
                h = level.upsample(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


def count_params(module):
    return sum(p.numel() for p in module.parameters())


def check_model(run: RunConfig):
    """Parameter count against the engine's, and the output shape of a small forward."""
    model = UNet(run.unet)
    params = count_params(model)
    expected = EXPECTED_PARAMS.get(run.name)
    if expected is None:
        note(f"note: no engine parameter count on file for config {run.name!r}; {params:,} parameters")
    elif params != expected:
        for name, child in model.named_children():
            note(f"  {name:<14} {count_params(child):>12,}")
        raise AssertionError(f"parameter count {params:,} (PyTorch) != {expected:,} (engine) for {run.name}")
    s = run.unet
    with torch.no_grad():
        out = model(torch.zeros(2, s.in_channels, s.resolution, s.resolution), torch.tensor([0, 999]))
    assert out.shape == (2, s.out_channels, s.resolution, s.resolution), f"output shape {tuple(out.shape)}"
    return params


# ---- diffusion --------------------------------------------------------------------------------

class LinearSchedule:
    def __init__(self, steps, device):
        betas = torch.linspace(1e-4, 0.02, steps, dtype=torch.float64)
        abar = torch.cumprod(1 - betas, dim=0)
        self.betas, self.abar = betas, abar
        self.sqrt_abar = abar.sqrt().float().to(device)
        self.sqrt_one_minus_abar = (1 - abar).sqrt().float().to(device)


# ---- variants ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    device: str  # "cpu", "cuda" or "any"
    channels_last: bool = False
    tf32: bool = False
    bf16: bool = False
    compile_mode: Optional[str] = None  # None: eager; else a torch.compile mode
    sample_only: bool = False


VARIANTS = [
    Variant("eager_fp32", "any"),
    Variant("channels_last_fp32", "cpu", channels_last=True),
    Variant("compile_default", "cpu", compile_mode="default"),
    Variant("tf32", "cuda", tf32=True),
    # TF32 stays on under autocast as a speed-seeking user would have it; it only touches fp32 GEMMs.
    Variant("bf16_autocast", "cuda", tf32=True, bf16=True),
    Variant("bf16_autocast_channels_last", "cuda", channels_last=True, tf32=True, bf16=True),
    Variant("compile_default_bf16", "cuda", tf32=True, bf16=True, compile_mode="default"),
    Variant("compile_max_autotune_bf16", "cuda", tf32=True, bf16=True, compile_mode="max-autotune"),
    Variant("compile_reduce_overhead_bf16", "cuda", tf32=True, bf16=True, compile_mode="reduce-overhead",
            sample_only=True),
]
VARIANTS_BY_NAME = {v.name: v for v in VARIANTS}


def select_variants(spec, device):
    if spec == "all":
        return [v for v in VARIANTS if v.device in ("any", device)]
    chosen = []
    for name in spec.split(","):
        if name not in VARIANTS_BY_NAME:
            sys.exit(f"--variants: unknown variant {name!r}; valid: all, {', '.join(VARIANTS_BY_NAME)}")
        chosen.append(VARIANTS_BY_NAME[name])
    return chosen


def skip_reason(variant, device):
    if variant.device not in ("any", device):
        return f"{variant.name} is a {variant.device} variant"
    if variant.compile_mode and not hasattr(torch, "compile"):
        return f"torch.compile needs torch >= 2.0 (this is {torch.__version__})"
    return None


def set_tf32(enabled):
    """TF32 for fp32 GEMMs and convolutions. Through the legacy flags, which also set the new
    fp32_precision ones: torch 2.9+ refuses to read the legacy state (as inductor does) once only
    the new API has set it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.backends.cuda.matmul.allow_tf32 = enabled
            torch.backends.cudnn.allow_tf32 = enabled
        except (AttributeError, RuntimeError):  # a torch that dropped the legacy flags
            torch.backends.cuda.matmul.fp32_precision = "tf32" if enabled else "ieee"
            torch.backends.cudnn.conv.fp32_precision = "tf32" if enabled else "ieee"


def autocast(variant, device):
    if variant.bf16:
        return torch.autocast(device_type=device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(variant):
    return torch.channels_last if variant.channels_last else torch.contiguous_format


def prepare_model(run, variant, device, training):
    model = UNet(run.unet).to(device)
    if variant.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train(training)
    if variant.compile_mode is None:
        return model, model
    torch._dynamo.reset()
    mode = None if variant.compile_mode == "default" else variant.compile_mode
    return model, torch.compile(model, mode=mode)


def make_adam(params, lr, device):
    """Adam as the engine configures it (betas 0.9/0.999, eps 1e-8); fused on CUDA if available."""
    fused = device == "cuda" and "fused" in inspect.signature(torch.optim.Adam.__init__).parameters
    optimizer = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, **({"fused": True} if fused else {}))
    return optimizer, "adam_fused" if fused else "adam"


def ema_update(shadow, params, decay):
    with torch.no_grad():
        if hasattr(torch, "_foreach_lerp_"):
            torch._foreach_lerp_(shadow, params, 1.0 - decay)
        else:
            torch._foreach_mul_(shadow, decay)
            torch._foreach_add_(shadow, params, alpha=1.0 - decay)


# ---- the timed steps --------------------------------------------------------------------------

def build_train_step(run, variant, device, batch, grad_clip):
    s = run.unet
    model, net = prepare_model(run, variant, device, training=True)
    params = list(model.parameters())
    shadow = [p.detach().clone() for p in params]
    optimizer, optimizer_name = make_adam(params, run.lr, device)
    schedule = LinearSchedule(run.steps, device)
    shape = (batch, s.in_channels, s.resolution, s.resolution)
    fmt = memory_format(variant)

    def step():
        x0 = torch.empty(shape, device=device, memory_format=fmt).uniform_(-1, 1)
        eps = torch.empty_like(x0).normal_()
        t = torch.randint(0, run.steps, (batch,), device=device)
        x_t = (schedule.sqrt_abar[t].view(-1, 1, 1, 1) * x0
               + schedule.sqrt_one_minus_abar[t].view(-1, 1, 1, 1) * eps)
        with autocast(variant, device):
            out = net(x_t, t)
        loss = F.mse_loss(out[:, :s.in_channels].float(), eps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        ema_update(shadow, params, run.ema_decay)

    return step, {"optimizer": optimizer_name, "grad_clip": grad_clip, "ema_decay": run.ema_decay}


def build_sample_step(run, variant, device, batch, t_index):
    s = run.unet
    _, net = prepare_model(run, variant, device, training=False)
    schedule = LinearSchedule(run.steps, device)
    t_index = min(t_index, run.steps - 1)
    beta, abar = schedule.betas[t_index].item(), schedule.abar[t_index].item()
    eps_coef, inv_sqrt_alpha, sigma = beta / math.sqrt(1 - abar), 1 / math.sqrt(1 - beta), math.sqrt(beta)
    t = torch.full((batch,), t_index, dtype=torch.long, device=device)
    state = {"x": torch.empty((batch, s.in_channels, s.resolution, s.resolution), device=device,
                              memory_format=memory_format(variant)).normal_()}
    mark_step = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None)
    mark_step = mark_step if variant.compile_mode == "reduce-overhead" else None

    def step():
        with torch.inference_mode():
            x = state["x"]
            if mark_step is not None:
                mark_step()
            with autocast(variant, device):
                eps = net(x, t)[:, :s.in_channels].float()
            state["x"] = (x - eps_coef * eps) * inv_sqrt_alpha + sigma * torch.randn_like(x)

    return step, {"t": t_index}


def build_sample_run(run, variant, device, batch):
    """The whole ancestral chain T-1 .. 0 (fixed_large variance, no noise at t = 0)."""
    s = run.unet
    _, net = prepare_model(run, variant, device, training=False)
    schedule = LinearSchedule(run.steps, device)
    coefs = []
    for i in range(run.steps):
        beta, abar = schedule.betas[i].item(), schedule.abar[i].item()
        coefs.append((beta / math.sqrt(1 - abar), 1 / math.sqrt(1 - beta), math.sqrt(beta) if i > 0 else 0.0))
    ts = [torch.full((batch,), i, dtype=torch.long, device=device) for i in range(run.steps)]
    shape = (batch, s.in_channels, s.resolution, s.resolution)
    mark_step = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None)
    mark_step = mark_step if variant.compile_mode == "reduce-overhead" else None

    def chain(steps):
        with torch.inference_mode():
            x = torch.empty(shape, device=device, memory_format=memory_format(variant)).normal_()
            for i in reversed(range(run.steps - steps, run.steps)):
                if mark_step is not None:
                    mark_step()
                with autocast(variant, device):
                    eps = net(x, ts[i])[:, :s.in_channels].float()
                eps_coef, inv_sqrt_alpha, sigma = coefs[i]
                x = (x - eps_coef * eps) * inv_sqrt_alpha
                if sigma > 0:
                    x = x + sigma * torch.randn_like(x)
            return x

    return chain


# ---- timing -----------------------------------------------------------------------------------

def synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_iterations(fn, iters, device):
    """Per-iteration milliseconds: (median, min)."""
    times = []
    synchronize(device)
    for _ in range(iters):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times)


def measure(step, variant, device, iters, warmup):
    extra = {}
    if variant.compile_mode is not None:
        t0 = time.perf_counter()
        step()  # compiles
        synchronize(device)
        extra["compile_s"] = round(time.perf_counter() - t0, 2)
        warmup = max(warmup, 5)  # autotuning and CUDA graph recording happen on the next calls
    for _ in range(warmup):
        step()
    ms, ms_min = time_iterations(step, iters, device)
    return ms, ms_min, extra


def release_memory(device):
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def first_line(error):
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def time_case(case, variant, run, args):
    """Builds the model and step for one case and variant and times it; everything it built is
    freed on return."""
    if args.device == "cuda":
        set_tf32(variant.tf32)
        torch.cuda.reset_peak_memory_stats()
    if case == "sample_run":
        chain = build_sample_run(run, variant, args.device, args.batch)
        extra = {}
        t0 = time.perf_counter()
        for _ in range(1 if variant.compile_mode is None else 6):  # compiles, records graphs
            chain(2)
        synchronize(args.device)
        if variant.compile_mode is not None:
            extra["compile_s"] = round(time.perf_counter() - t0, 2)
        ms, ms_min = time_iterations(lambda: chain(run.steps), 1, args.device)
        return ms, ms_min, {**extra, "iters": 1, "steps": run.steps, "ms_per_step": round(ms / run.steps, 4)}
    if case == "train":
        step, info = build_train_step(run, variant, args.device, args.batch, args.grad_clip)
    else:
        step, info = build_sample_step(run, variant, args.device, args.batch, args.t)
    ms, ms_min, extra = measure(step, variant, args.device, args.iters, args.warmup)
    if args.device == "cuda" and case == "train":
        extra["peak_bytes"] = torch.cuda.max_memory_allocated()
    return ms, ms_min, {**extra, **info}


def largest_batch(start, limit, fits):
    """bench/largest_batch.h's search: (largest batch that fit, first that failed, probes)."""
    probes, ok, failed, b = 0, 0, 0, max(1, min(start, limit))
    while True:
        probes += 1
        if not fits(b):
            failed = b
            break
        ok = b
        if b == limit:
            return ok, 0, probes
        b = min(limit, 2 * b)
    while failed - ok > max(1, ok // 32):
        mid = ok + (failed - ok) // 2
        probes += 1
        if fits(mid):
            ok = mid
        else:
            failed = mid
    return ok, failed, probes


def run_largest_batch_case(variant, run, args, common):
    base = {"side": "pytorch", "bench": "largest_batch", "config": run.name, "device": args.device,
            "variant": variant.name}
    if args.device != "cuda" or variant.compile_mode is not None or skip_reason(variant, args.device):
        emit({**base, **common, "skipped": "CUDA eager variants only (a compiled step recompiles per batch)"})
        return
    set_tf32(variant.tf32)

    def fits(batch):
        try:
            step, _ = build_train_step(run, variant, args.device, batch, args.grad_clip)
            step()
            step()
            synchronize(args.device)
            return True
        except RuntimeError as error:  # torch.cuda.OutOfMemoryError, or a library's failed workspace
            text = str(error)
            if isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in text or "ALLOC_FAILED" in text:
                return False
            raise
        finally:
            step = None
            release_memory(args.device)

    note(f"largest_batch {variant.name} ...")
    t0 = time.perf_counter()
    ok, failed, probes = largest_batch(args.batch, 1 << 20, fits)
    emit({**base, "largest_batch": ok, "first_failed": failed, "probes": probes,
          "search_s": round(time.perf_counter() - t0, 1), **common})


def run_model_case(case, variant, run, args, common):
    base = {"side": "pytorch", "bench": case if case == "sample_run" else f"{case}_step", "config": run.name, "device": args.device,
            "batch": args.batch, "variant": variant.name}
    reason = skip_reason(variant, args.device)
    if reason is None and variant.sample_only and case == "train":
        reason = "timed for sample_step only"
    if reason is not None:
        emit({**base, **common, "skipped": reason})
        return
    note(f"{case}_step {variant.name} ...")
    try:
        ms, ms_min, extra = time_case(case, variant, run, args)
    except Exception as error:  # report it and go on to the next variant
        emit({**base, **common, "skipped": first_line(error)})
        return
    finally:
        release_memory(args.device)
    emit({**base, "ms": round(ms, 3), "ms_min": round(ms_min, 3), "iters": args.iters,
          "images_per_s": round(args.batch / (ms / 1e3), 1), **common, **extra})


# ---- attention kernels (CUDA) -----------------------------------------------------------------

SDPA_BACKENDS = [("flash", "FLASH_ATTENTION"), ("efficient", "EFFICIENT_ATTENTION"),
                 ("cudnn", "CUDNN_ATTENTION"), ("math", "MATH")]


def attention_shapes(s: UNetSpec, tokens=None):
    """(tokens, channels) of every attention block in the UNet: the down/up levels whose
    resolution is listed, and the middle block at the lowest resolution. With `tokens`, those
    token counts instead, each at the channel count of the level of that resolution."""
    levels, res = [], s.resolution  # (tokens, channels) of each level
    for i, mult in enumerate(s.channel_mult):
        levels.append((res * res, s.base_channels * mult))
        if i != len(s.channel_mult) - 1:
            res //= 2
    if tokens:
        channels = dict(levels)
        missing = [n for n in tokens if n not in channels]
        if missing:
            sys.exit(f"--attention-tokens {missing}: no UNet level has that many positions; "
                     f"levels have {[n for n, _ in levels]}")
        return [(n, channels[n]) for n in tokens]
    shapes = [(n, c) for n, c in levels if math.isqrt(n) in s.attention_resolutions] + [levels[-1]]
    return sorted(set(shapes), reverse=True)


def sdpa_backend(name, enum_name):
    """A context manager that allows only this SDPA backend."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel  # torch >= 2.3
    except ImportError:
        legacy = getattr(torch.backends.cuda, "sdp_kernel", None)  # torch 2.0 - 2.2
        if legacy is None or name == "cudnn":
            raise NotImplementedError(f"no {name} SDPA backend selection in torch {torch.__version__}")
        return legacy(enable_flash=name == "flash", enable_mem_efficient=name == "efficient",
                      enable_math=name == "math")
    backend = getattr(SDPBackend, enum_name, None)
    if backend is None:
        raise NotImplementedError(f"SDPBackend.{enum_name} is not in torch {torch.__version__}")
    return sdpa_kernel([backend])


class Rejected(Exception):
    """An SDPA backend refused the inputs; the message says why."""


def time_sdpa(name, enum_name, q, k, v, backward, args):
    """(median, min) ms of SDPA forward (under no_grad), or forward+backward, with only this
    backend allowed."""
    grad_out = torch.randn_like(q)

    def forward():
        with torch.no_grad():
            F.scaled_dot_product_attention(q, k, v)

    def forward_backward():
        out = F.scaled_dot_product_attention(q, k, v)
        torch.autograd.grad(out, (q, k, v), grad_out)

    fn = forward_backward if backward else forward
    with sdpa_backend(name, enum_name):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                fn()  # a backend that rejects the inputs raises here, after warning why
                synchronize("cuda")
            except Exception as error:
                raise Rejected(rejection_reason(caught, error)) from error
        for _ in range(args.warmup):
            fn()
        return time_iterations(fn, args.iters, "cuda")


def rejection_reason(caught_warnings, error):
    """Why SDPA refused: the warnings it gave (less those about the backends switched off), else
    the error's first line."""
    reasons = []
    for w in caught_warnings:
        text = re.sub(r"\s*\(Triggered internally at .*", "", str(w.message), flags=re.S).strip()
        if text and "disabled" not in text and text not in reasons:
            reasons.append(text.splitlines()[0])
    return " ".join(reasons)[:400] if reasons else first_line(error)


def run_attention_case(run, args, common):
    s = run.unet
    reason = None
    if args.device != "cuda":
        reason = "the SDPA kernel comparison runs on CUDA only"
    elif not hasattr(F, "scaled_dot_product_attention"):
        reason = f"scaled_dot_product_attention needs torch >= 2.0 (this is {torch.__version__})"
    if reason is not None:
        emit({"side": "pytorch", "bench": "attention", "config": run.name, "device": args.device,
              "batch": args.batch, **common, "skipped": reason})
        return
    for tokens, channels in attention_shapes(s, args.attention_tokens):
        head_dim = channels // s.heads
        shape = (args.batch, s.heads, tokens, head_dim)
        q, k, v = (torch.randn(shape, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        for backward in (False, True):
            bench = "attention_forward_backward" if backward else "attention_forward"
            for name, enum_name in SDPA_BACKENDS:
                base = {"side": "pytorch", "bench": bench, "config": run.name, "device": "cuda",
                        "tokens": tokens, "batch": args.batch, "heads": s.heads, "head_dim": head_dim,
                        "dtype": "bf16", "variant": name}
                note(f"{bench} tokens={tokens} {name} ...")
                try:
                    ms, ms_min = time_sdpa(name, enum_name, q, k, v, backward, args)
                except Exception as error:
                    reason = str(error) if isinstance(error, Rejected) else first_line(error)
                    emit({**base, **common, "skipped": reason})
                    continue
                finally:
                    release_memory("cuda")
                emit({**base, "ms": round(ms, 4), "ms_min": round(ms_min, 4), "iters": args.iters, **common})
        del q, k, v
        release_memory("cuda")


# ---- main -------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="one of our JSON configs, e.g. configs/quickstart.json")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--cases", default="train,sample",
                   help="comma list of train, sample, sample_run, largest_batch, attention")
    p.add_argument("--iters", type=int, default=20, help="timed iterations")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations first (compiled variants: at least 5)")
    p.add_argument("--variants", default="all", help="comma list, or all: " + ", ".join(VARIANTS_BY_NAME))
    p.add_argument("--t", type=int, default=500, help="the step index of the timed sampling step")
    p.add_argument("--no-grad-clip", action="store_true", help="leave gradient-norm clipping out of train_step")
    p.add_argument("--resolution", type=int, help="image side, for datasets without a fixed size (folder)")
    p.add_argument("--channels", type=int, help="image channels, overriding the dataset's")
    p.add_argument("--attention-tokens", help="comma list of token counts for the attention case "
                   "(default: the UNet's own attention shapes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: every core)")
    args = p.parse_args(argv)
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if args.attention_tokens:
        args.attention_tokens = [int(n) for n in args.attention_tokens.split(",")]
    cases = ("train", "sample", "sample_run", "largest_batch", "attention")
    bad = [c for c in args.cases if c not in cases]
    if bad or args.batch < 1 or args.iters < 1 or args.warmup < 0:
        p.error(f"need --cases from {','.join(cases)} (got {bad}), --batch >= 1, --iters >= 1, --warmup >= 0")
    return args


def setup_device(device, threads=0):
    if device == "cpu":
        torch.set_num_threads(threads or os.cpu_count() or 1)
        note(f"torch {torch.__version__}, CPU, {torch.get_num_threads()} threads")
        return {}
    if not torch.cuda.is_available():
        sys.exit("--device cuda: torch.cuda.is_available() is False (no GPU, or a CPU-only torch build)")
    torch.backends.cudnn.benchmark = True
    gpu = torch.cuda.get_device_name()
    note(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {gpu}, {torch.get_num_threads()} CPU threads")
    return {"gpu": gpu}


def main(argv=None):
    args = parse_args(argv)
    run = load_config(args.config, args.resolution, args.channels)
    args.grad_clip = 0.0 if args.no_grad_clip else run.grad_clip
    variants = select_variants(args.variants, args.device)
    torch.manual_seed(args.seed)
    device_info = setup_device(args.device, args.threads)
    params = check_model(run)
    s = run.unet
    note(f"{run.name}: UNet {s.resolution}x{s.resolution}x{s.in_channels} -> {s.out_channels} channels, "
         f"{params:,} parameters" + (" (the engine's count)" if run.name in EXPECTED_PARAMS else ""))
    common = {"params": params, "torch": torch.__version__, "threads": torch.get_num_threads(), **device_info}
    for case in args.cases:
        if case == "attention":
            run_attention_case(run, args, common)
            continue
        for variant in variants:
            if case == "largest_batch":
                run_largest_batch_case(variant, run, args, common)
                continue
            if args.variants == "all" and variant.sample_only and case == "train":
                continue
            run_model_case(case, variant, run, args, common)


if __name__ == "__main__":
    main()
