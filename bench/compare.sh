#!/usr/bin/env bash
# The engine and PyTorch, same machine, same models, one run: prints a table of ratios.
#
#   bash bench/compare.sh            # everything this machine can run (GPU cases when a GPU works)
#   ITERS=20 bash bench/compare.sh   # more timed iterations (default 10)
#
# Builds the benchmarks into build-bench/, runs bench_end_to_end and bench/pytorch_reference.py on
# the same configs and batch sizes (and, on a GPU, the kernel benchmarks against the copy bandwidth
# and bf16 GEMM peak measured in the same run), keeps every JSON line in
# bench-results/<date>-<host>/results.jsonl and prints the table bench/compare_table.py makes.
# On the CPU it gives PyTorch the OpenBLAS kernels the engine chose (OPENBLAS_CORETYPE), so that
# both sides run the same GEMM code where PyTorch uses BLAS at all.
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${ITERS:-10}
out="bench-results/$(date +%Y-%m-%d-%H%M)-$(hostname -s)"
mkdir -p "$out"
results="$out/results.jsonl"
: >"$results"

# A python3 that imports torch: the one on PATH, Debian's, or Debian's python3-torch installed now.
python=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c "import torch" 2>/dev/null; then python=$candidate; break; fi
done
if [[ -z $python ]]; then
  echo "compare: no python3 with torch; installing Debian's python3-torch" >&2
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -q && $sudo apt-get install -y -q python3-torch
  python=/usr/bin/python3
fi

gpu=0
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then gpu=1; fi
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DDDPM_BUILD_TESTS=OFF -DDDPM_WITH_CUDA=$([[ $gpu == 1 ]] && echo ON || echo OFF) >/dev/null
targets=(bench_end_to_end ddpm)
[[ $gpu == 1 ]] && targets+=(bench_cuda_diffusion bench_cuda_norm_attention bench_cuda_conv2d bench_cuda_adam)
cmake --build build-bench -j "$(nproc)" --target "${targets[@]}" >/dev/null

engine() { build-bench/bench/bench_end_to_end --iters "$iters" "$@" | tee -a "$results"; }
torch_ref() { "$python" bench/pytorch_reference.py --iters "$iters" "$@" | tee -a "$results"; }

if [[ $gpu == 1 ]]; then
  cifar=configs/cifar10_ddpm.json
  engine --config $cifar --device cuda --batch 128 --cases train --set train.mixed_precision=true
  engine --config $cifar --device cuda --batch 128 --cases train
  engine --config $cifar --device cuda --batch 256 --cases sample --set train.mixed_precision=true
  engine --config $cifar --device cuda --batch 256 --cases sample_run --set train.mixed_precision=true
  torch_ref --config $cifar --device cuda --batch 128 --cases train --warmup 5 --variants all
  torch_ref --config $cifar --device cuda --batch 256 --cases sample --warmup 5 --variants all
  torch_ref --config $cifar --device cuda --batch 128 --cases attention --attention-tokens 256,64 --warmup 5
  for kernel in bench_cuda_diffusion bench_cuda_norm_attention bench_cuda_conv2d bench_cuda_adam; do
    "build-bench/bench/$kernel" | tee -a "$results"
  done
else
  core=$(build-bench/ddpm info --config configs/quickstart.json 2>/dev/null | sed -n 's/.*OpenBLAS kernels \([A-Za-z0-9]*\).*/\1/p')
  engine --config configs/quickstart.json --device cpu --batch 32 --cases train,sample --warmup 3
  OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$core} torch_ref --config configs/quickstart.json --device cpu --batch 32 \
    --cases train,sample --warmup 3 --variants all
fi

{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ), host: $(hostname -s), command: bash bench/compare.sh (ITERS=$iters)"
  if [[ $gpu == 1 ]]; then nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; else
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, no GPU"; fi
  "$python" -c "import torch; print('torch', torch.__version__)"
  echo
  python3 bench/compare_table.py "$results"
} | tee "$out/table.md"
