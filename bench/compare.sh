#!/usr/bin/env bash
# The engine and PyTorch, same machine, same models, one run: prints a table of ratios.
#
#   bash bench/compare.sh            # everything this machine can run (GPU cases when a GPU works)
#   ITERS=20 bash bench/compare.sh   # more timed iterations (default 10)
#   BUILD_DIR=build bash bench/compare.sh  # reuse a configured build tree (only the targets are built)
#   THREADS=1 bash bench/compare.sh  # CPU: both sides on one thread (less at the mercy of other load)
#   BIN_DIR=.gpu/bin bash bench/compare.sh  # prebuilt programs (a GPU machine that cannot build:
#                                    # ../shared/gpu/pack.sh's bundle, unpacked by .gpu/run.sh)
#   COMMIT=abc1234 ...               # the commit to print, where the tree is a copy without .git
#   SLOW_COMPILE=1 bash bench/compare.sh  # GPU: also torch.compile max-autotune (minutes to compile)
#
# Builds the benchmarks into build-bench/, runs bench_end_to_end and bench/pytorch_reference.py on
# the same configs and batch sizes (and, on a GPU, the kernel benchmarks against the copy bandwidth
# and bf16 GEMM peak measured in the same run), keeps every JSON line in
# bench-results/<date>-<host>/results.jsonl and prints the table bench/compare_table.py makes.
# PyTorch: the current release from PyPI in .venv-bench/ (eager and torch.compile variants), and
# Debian's python3-torch 1.13 as a second column where it is installed; Debian's build gets the
# OpenBLAS kernels the engine chose (OPENBLAS_CORETYPE), the PyPI wheel brings its own BLAS.
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${ITERS:-10}
out="bench-results/$(date +%Y-%m-%d-%H%M)-$(hostname -s)"
mkdir -p "$out"
results="$out/results.jsonl"
: >"$results"
load_before=$(uptime | sed 's/.*load average: //')

# Current PyTorch from PyPI in a virtual environment of its own (.venv-bench/, or $TORCH_VENV),
# installed on first use without touching the system Python. Without a GPU: the CPU wheel index
# first, plain PyPI (CUDA wheels, which run on the CPU too) where that index is unreachable.
# A python3 that already has torch 2 or newer (a GPU machine without network) is used as it is.
venv=${TORCH_VENV:-.venv-bench}
if [[ -x $venv/bin/python ]] && "$venv/bin/python" -c "import torch" 2>/dev/null; then
  python="$venv/bin/python"
elif python3 -c "import sys, torch; sys.exit(int(torch.__version__.split('.')[0]) < 2)" 2>/dev/null; then
  python=python3
else
  echo "compare: installing current PyTorch into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    "$venv/bin/pip" install -q torch
  else
    "$venv/bin/pip" install -q --index-url https://download.pytorch.org/whl/cpu torch ||
      "$venv/bin/pip" install -q torch
  fi
  python="$venv/bin/python"
fi
# Debian's python3-torch (1.13), when installed, runs the same script as a second column.
old_python=""
if [[ $python != python3 && -x /usr/bin/python3 ]] && /usr/bin/python3 -c "import torch" 2>/dev/null; then
  old_python=/usr/bin/python3
fi

gpu=0
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then gpu=1; fi
if [[ -n ${BIN_DIR:-} ]]; then
  bin=$BIN_DIR ddpm=$BIN_DIR/ddpm
  # A bundle's own libraries (pack.sh's lib/ next to bin/) and the CUDA libraries (cuDNN, cuBLAS)
  # that the PyTorch install brings.
  [[ -d $BIN_DIR/../lib ]] && export LD_LIBRARY_PATH=$BIN_DIR/../lib:${LD_LIBRARY_PATH:-}
  nvidia_libs=$("$python" - <<'PY' 2>/dev/null || true
import glob, os, nvidia
print(":".join(sorted({os.path.dirname(p) for r in nvidia.__path__
                       for p in glob.glob(r + "/**/lib/lib*.so*", recursive=True)})))
PY
)
  [[ -n $nvidia_libs ]] && export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}:$nvidia_libs
else
  build=${BUILD_DIR:-build-bench}
  if [[ -z ${BUILD_DIR:-} ]]; then
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DDDPM_BUILD_TESTS=OFF -DDDPM_WITH_CUDA=$([[ $gpu == 1 ]] && echo ON || echo OFF) >/dev/null
  fi
  targets=(bench_end_to_end ddpm)
  [[ $gpu == 1 ]] && targets+=(bench_cuda_diffusion bench_cuda_norm_attention bench_cuda_conv2d bench_cuda_adam)
  cmake --build "$build" -j "$(nproc)" --target "${targets[@]}" >/dev/null
  bin=$build/bench ddpm=$build/ddpm
fi

engine() { "$bin"/bench_end_to_end --iters "$iters" "$@" | tee -a "$results"; }
torch_ref() { "$python" bench/pytorch_reference.py --iters "$iters" "$@" | tee -a "$results"; }
old_torch_ref() { [[ -z $old_python ]] || "$old_python" bench/pytorch_reference.py --iters "$iters" "$@" | tee -a "$results"; }

if [[ $gpu == 1 ]]; then
  cifar=configs/cifar10_ddpm.json
  compiled=compile_default_bf16
  [[ ${SLOW_COMPILE:-0} == 1 ]] && compiled+=,compile_max_autotune_bf16
  eager=bf16_autocast,bf16_autocast_channels_last
  engine --config $cifar --device cuda --batch 128 --cases train --set train.mixed_precision=true
  engine --config $cifar --device cuda --batch 128 --cases train
  for deterministic in true false; do  # cuDNN convolutions, with and without its atomic algorithms
    engine --config $cifar --device cuda --batch 128 --cases train --set train.mixed_precision=true \
      --set train.conv_impl=cudnn --set train.deterministic=$deterministic
  done
  engine --config $cifar --device cuda --batch 256 --cases sample --set train.mixed_precision=true
  engine --config $cifar --device cuda --batch 256 --cases sample_run --set train.mixed_precision=true
  engine --config $cifar --device cuda --batch 128 --cases largest_batch --set train.mixed_precision=true
  torch_ref --config $cifar --device cuda --batch 128 --cases train --warmup 5 --variants tf32,$eager,$compiled
  torch_ref --config $cifar --device cuda --batch 256 --cases sample --warmup 5 \
    --variants $eager,$compiled,compile_reduce_overhead_bf16
  torch_ref --config $cifar --device cuda --batch 256 --cases sample_run --variants bf16_autocast,compile_reduce_overhead_bf16
  torch_ref --config $cifar --device cuda --batch 128 --cases largest_batch --variants bf16_autocast
  torch_ref --config $cifar --device cuda --batch 128 --cases attention --attention-tokens 256,64 --warmup 5
  for kernel in bench_cuda_diffusion bench_cuda_norm_attention bench_cuda_conv2d bench_cuda_adam; do
    "$bin/$kernel" | tee -a "$results"
  done
else
  core=$("$ddpm" info --config configs/quickstart.json 2>/dev/null | sed -n 's/.*OpenBLAS kernels \([A-Za-z0-9]*\).*/\1/p')
  # Engine and current PyTorch twice, alternating, so that a load change on a shared machine
  # hits both sides; Debian's torch once.
  threads=${THREADS:-$(nproc)}
  for round in 1 2; do
    OMP_NUM_THREADS=$threads engine --config configs/quickstart.json --device cpu --batch 32 --cases train,sample --warmup 3
    torch_ref --config configs/quickstart.json --device cpu --batch 32 --cases train,sample --warmup 3 --variants all \
      --threads "$threads"
  done
  OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$core} old_torch_ref --config configs/quickstart.json --device cpu \
    --batch 32 --cases train,sample --warmup 3 --variants all --threads "$threads"
fi

commit=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo "?")}  # COMMIT: a copy without .git
{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ), host: $(hostname -s), commit: $commit, command: bash bench/compare.sh (ITERS=$iters)"
  if [[ $gpu == 1 ]]; then echo "device: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)"; else
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, ${threads} threads per side, no GPU"
    echo "load average (1, 5, 15 min): before ${load_before}; after $(uptime | sed 's/.*load average: //')"; fi
  "$python" -c "import torch; print('torch', torch.__version__)"
  [[ -z $old_python ]] || "$old_python" -c "import torch; print('second column: torch', torch.__version__)"
  echo
  python3 bench/compare_table.py "$results"
  echo
  echo "compare.sh took $SECONDS s."
} | tee "$out/table.md"
# On a GPU the table replaces the previous one in docs/benchmarks.md (git keeps the history).
if [[ $gpu == 1 ]]; then python3 bench/compare_table.py --into docs/benchmarks.md "$out/table.md"; fi
