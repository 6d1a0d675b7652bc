#!/usr/bin/env bash
# The quick start: set up, build ddpm, train a DDPM on Fashion-MNIST (configs/quickstart.json,
# about 6 minutes of training on 2 CPU cores), then draw samples and measure test bits/dim and the
# samples' quality in the feature space of the engine's own Fashion-MNIST classifier
# (pretrained/classifier-fashion-mnist, trained by `ddpm classifier train`).
# Everything lands in runs/quickstart (override with RUN_DIR); an interrupted run there is resumed,
# a finished one only sampled and evaluated again.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${RUN_DIR:-runs/quickstart}
build=${BUILD_DIR:-build-quickstart}
jobs=$(nproc 2>/dev/null || echo 2)

bash scripts/setup.sh

# Without a GPU the CUDA kernels are not needed: skip compiling them (and the tests) to build faster.
cuda=OFF
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then cuda=ON; fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DDDPM_WITH_CUDA=$cuda -DDDPM_BUILD_TESTS=OFF -DDDPM_BUILD_BENCH=OFF
cmake --build "$build" -j "$jobs" --target ddpm
ddpm="$build/ddpm"

start=$(date +%s)
if [ -f "$run/samples.png" ]; then
  echo "quick start: $run is already trained; sampling and evaluating it"
elif [ -f "$run/checkpoint.json" ]; then
  "$ddpm" train --resume "$run"
else
  "$ddpm" train --config configs/quickstart.json --out "$run"
fi
trained=$(date +%s)

# `ddpm train` ends by drawing samples.png (sample.count images, train.sample_steps respaced
# ancestral steps, the EMA weights): the same grid `ddpm sample --run "$run"` would draw.
"$ddpm" eval --run "$run"
# Classifier-FD (with KID and precision/recall) of 1,000 samples (DPM-Solver++(2M), 20 steps)
# against 1,000 test images; for scale, the same for 1,000 training images (the floor a perfect
# model would reach at this N) and for pure noise.
classifier=pretrained/classifier-fashion-mnist
quality() {  # SOURCE OUT.json
  "$ddpm" eval --run "$run" --metrics fid,kid,precision,recall --features "classifier:$classifier" --count 1000 \
    --source "$1" --set sample.method=dpm++2m --set sample.steps=20 --cache "$run/reference_stats" --out "$2"
}
quality samples "$run/quality.json"
quality train "$run/quality_train_floor.json"
quality noise "$run/quality_noise.json"
done_at=$(date +%s)

echo
echo "quick start: training took $((trained - start)) s, sampling and evaluation $((done_at - trained)) s"
echo "  samples:     $run/samples.png"
echo "  loss curve:  $run/loss_curve.png"
echo "  bits/dim:    $run/eval.json (per-term plot: $run/eval_terms.png)"
python3 - "$run" <<'PY' || true
import json, sys
run = sys.argv[1]
fd = lambda name: json.load(open(f"{run}/{name}"))["metrics"]["fid"]
print(f"  classifier-FD of 1,000 samples: {fd('quality.json'):.3f} (training images: {fd('quality_train_floor.json'):.3f}, "
      f"noise: {fd('quality_noise.json'):.1f}); details in {run}/quality*.json")
PY
