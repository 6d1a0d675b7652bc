#!/usr/bin/env bash
# Fuzzes the parsers of outside input with libFuzzer under AddressSanitizer and
# UndefinedBehaviorSanitizer (clang):
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET [TARGET ...]]
# Targets (tests/fuzz/targets.h): safetensors checkpoint config idx cifar image_folder; default all,
# 600 s each. New inputs that reach new code are merged into tests/fuzz/corpus/<target>/ (minimized);
# an input that crashes, leaks or hangs is written to tests/fuzz/crashes/<target>/ and the script
# fails. Commit both folders: tests/test_fuzz_corpus.cpp replays them in every test run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(safetensors checkpoint config idx cifar image_folder)
build=${BUILD_DIR:-build-fuzz}

bash scripts/setup.sh
need=()
for p in clang libclang-rt-14-dev libomp-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
fi

CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDDPM_FUZZ=ON -DDDPM_WITH_CUDA=OFF \
  -DDDPM_WITH_MPI=OFF -DDDPM_BUILD_TESTS=OFF -DDDPM_BUILD_BENCH=OFF \
  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fsanitize=fuzzer-no-link" >/dev/null
cmake --build "$build" -j "$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}")

status=0
for t in "${targets[@]}"; do
  corpus=tests/fuzz/corpus/$t crashes=tests/fuzz/crashes/$t fresh=$build/new-corpus/$t
  mkdir -p "$corpus" "$crashes" "$fresh"
  log=$build/fuzz-$t.log
  echo "fuzz: $t for ${seconds}s (log: $log)"
  if ! "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$crashes/" "$fresh" "$corpus" >"$log" 2>&1; then
    echo "fuzz: $t FAILED; the input is in $crashes/ (see $log)"
    status=1
  fi
  # Keep only inputs that add coverage to what the corpus already has.
  "$build/tests/fuzz/fuzz_$t" -merge=1 "$corpus" "$fresh" >>"$log" 2>&1
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$log" | sed "s/^/fuzz: $t /"
  grep -E "^#[0-9]+.*(DONE|cov:)" "$log" | tail -1 | sed "s/^/fuzz: $t last status: /"
  echo "fuzz: $t corpus $(ls "$corpus" | wc -l) files"
done
exit $status
