#!/usr/bin/env bash
# Fuzzes the parsers of outside input with libFuzzer under AddressSanitizer and
# UndefinedBehaviorSanitizer (clang):
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET [TARGET ...]]
# Targets (tests/fuzz/targets.h): safetensors checkpoint config idx cifar image_folder; default all,
# 600 s each. tests/fuzz/corpus/<target>/ is replaced by the fewest inputs that reach every edge found;
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
  corpus=tests/fuzz/corpus/$t crashes=tests/fuzz/crashes/$t work=$build/corpus/$t
  mkdir -p "$corpus" "$crashes" "$work"
  log=$build/fuzz-$t.log
  echo "fuzz: $t for ${seconds}s (log: $log)"
  # New inputs go to the first folder ($work, outside the repository).
  if ! "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$crashes/" "$work" "$corpus" >"$log" 2>&1; then
    echo "fuzz: $t FAILED; the input is in $crashes/ (see $log)"
    status=1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$log" | sed "s/^/fuzz: $t /"
  grep -E "^#[0-9]+.*cov:" "$log" | tail -1 | sed "s/^/fuzz: $t last status: /"
  # The committed corpus: the fewest inputs that reach every edge reached so far.
  minimal=$build/minimal/$t
  rm -rf "$minimal" && mkdir -p "$minimal"
  "$build/tests/fuzz/fuzz_$t" -merge=1 -use_counters=0 "$minimal" "$corpus" "$work" >>"$log" 2>&1
  rm -rf "$corpus" && mv "$minimal" "$corpus"
  echo "fuzz: $t corpus $(ls "$corpus" | wc -l) files, $(du -sk "$corpus" | cut -f1) KiB"
done
exit $status
