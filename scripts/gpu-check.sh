#!/usr/bin/env bash
# Everything that needs a GPU, on a machine that has one: a fresh build, the gpu-labelled tests
# (which must run, not skip), the same tests under compute-sanitizer memcheck and racecheck, and
# every bench_cuda* benchmark. Prints a summary (stage: PASS/FAIL, device, date) and keeps the
# whole output in build-gpu/gpu-check.log; copy the summary into docs/gpu-runs.md.
#
#   scripts/gpu-check.sh            (BUILD_DIR=build-gpu, JOBS=nproc by default)
#   GPU_TEST_FILTER='[parity]' scripts/gpu-check.sh   Catch2 filter for the sanitizer runs
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build-gpu}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 4)}
filter=${GPU_TEST_FILTER:-}

die() {
  echo "gpu-check: $*" >&2
  exit 1
}

command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this script needs a machine with an NVIDIA GPU"
nvidia-smi >/dev/null 2>&1 || die "nvidia-smi failed: no usable GPU or driver"
command -v cmake >/dev/null || die "cmake not found"

rm -rf "$build"
mkdir -p "$build"
log="$build/gpu-check.log"
: >"$log"
# From here on everything also goes to the log.
exec > >(tee -a "$log") 2>&1

device=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain 2>/dev/null || true)" ]; then commit="$commit+dirty"; fi

declare -a stage_names=() stage_results=()
failed=0
record() {  # record NAME RESULT
  stage_names+=("$1")
  stage_results+=("$2")
  if [ "$2" = FAIL ]; then failed=1; fi
}
banner() { printf '\n==== %s ====\n' "$*"; }

banner "nvidia-smi"
nvidia-smi

banner "configure + build ($build, -j$jobs)"
if cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release && cmake --build "$build" -j "$jobs"; then
  record build PASS
  built=1
else
  record build FAIL
  built=0
fi

gpu_tests="$build/tests/ddpm_gpu_tests"
if [ "$built" = 1 ]; then
  banner "ctest -L gpu"
  ctest_out="$build/ctest-gpu.txt"
  if ctest --test-dir "$build" -L gpu --output-on-failure 2>&1 | tee "$ctest_out"; then
    # ctest exits 0 when the only test was skipped; on this machine that is a failure.
    if grep -Eqi 'skipped|not run|no tests were found' "$ctest_out"; then
      echo "gpu-check: the gpu tests were skipped or not found although a GPU is present"
      record "ctest -L gpu" FAIL
    else
      record "ctest -L gpu" PASS
    fi
  else
    record "ctest -L gpu" FAIL
  fi

  for tool in memcheck racecheck; do
    banner "compute-sanitizer --tool $tool"
    if ! command -v compute-sanitizer >/dev/null; then
      echo "gpu-check: compute-sanitizer not found (it ships with the CUDA toolkit)"
      record "sanitizer $tool" FAIL
      continue
    fi
    # shellcheck disable=SC2086  # the filter is one Catch2 argument or nothing
    if compute-sanitizer --tool "$tool" --error-exitcode 99 "$gpu_tests" ${filter:+"$filter"}; then
      record "sanitizer $tool" PASS
    else
      record "sanitizer $tool" FAIL
    fi
  done

  shopt -s nullglob
  benches=("$build"/bench/bench_cuda*)
  shopt -u nullglob
  if [ "${#benches[@]}" -eq 0 ]; then
    echo "gpu-check: no bench_cuda* executables were built"
    record benchmarks FAIL
  fi
  for bench in "${benches[@]}"; do
    if [ ! -f "$bench" ] || [ ! -x "$bench" ]; then continue; fi
    banner "$(basename "$bench")"
    if "$bench"; then
      record "$(basename "$bench")" PASS
    else
      record "$(basename "$bench")" FAIL
    fi
  done
  # Data parallelism on the GPU: NCCL at one rank must train exactly what one process trains, and
  # the all-reduce of the CIFAR-10 model's gradient buffer is timed (docs/distributed.md).
  if command -v mpirun >/dev/null && [ -x "$build/bench/bench_allreduce" ]; then
    banner "nccl: 1 rank equals 1 process"
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    runs=$(mktemp -d)
    small=(--config configs/quickstart.json --set train.device=cuda --set train.steps=3 --set train.sample_every=0
           --set train.log_every=1 --set model.dropout=0.1 --set data.random_flip=true --set sample.count=4
           --set train.sample_steps=4)
    if "$build/ddpm" train "${small[@]}" --out "$runs/one" && mpirun -np 1 "$build/ddpm" train "${small[@]}" --out "$runs/nccl" \
       && python3 scripts/compare_checkpoints.py "$runs/one" "$runs/nccl" 0; then
      record "nccl 1-rank equivalence" PASS
    else
      record "nccl 1-rank equivalence" FAIL
    fi
    rm -rf "$runs"
    banner "bench_allreduce (nccl, 1 rank)"
    if mpirun -np 1 "$build/bench/bench_allreduce" 35746307 20 cuda; then
      record "bench_allreduce cuda" PASS
    else
      record "bench_allreduce cuda" FAIL
    fi
  else
    echo "gpu-check: no mpirun or no bench_allreduce (a build without Open MPI): NCCL checks not run"
    record "nccl checks" "NOT RUN (no Open MPI)"
  fi
fi

banner "summary"
echo "date:   $started"
echo "device: $device"
echo "commit: $commit"
for i in "${!stage_names[@]}"; do
  printf '  %-32s %s\n' "${stage_names[$i]}" "${stage_results[$i]}"
done
if [ "$failed" = 0 ]; then
  echo "result: PASS"
else
  echo "result: FAIL"
fi
echo "log:    $log"
exit "$failed"
