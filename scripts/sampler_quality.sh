#!/usr/bin/env bash
# Sample quality against the number of network evaluations, per sampler, for a trained run, and the
# share of guided samples the classifier assigns to the requested class (class-conditional runs).
#
#   bash scripts/sampler_quality.sh RUN_DIR [COUNT] [OUT_DIR]
#
# Every point is one `ddpm eval --metrics fid[,accuracy]` in the committed classifier's feature
# space (pretrained/classifier-fashion-mnist; FEATURES=SPEC for another), COUNT samples (default
# 1000) against the first COUNT test images, all drawn from the same seed, so the samplers start from
# the same noise. Points already in OUT_DIR (default RUN_DIR/sampler_quality) are kept, so an
# interrupted sweep resumes. The FD sweep samples at guidance 0 (the conditional model alone; one
# network evaluation per step); the guidance sweep uses DPM-Solver++(2M) with 20 steps.
# Writes OUT_DIR/fd/*.json and OUT_DIR/guidance/*.json (eval.json of each point), the plots
# fd_vs_evaluations.png, accuracy_vs_guidance.png and fd_vs_guidance.png, and prints their points.
#
# Environment: DDPM (default build-quickstart/ddpm, else build/ddpm), EVALUATIONS (default
# "10 20 50 100 250 1000"), METHODS (default "ancestral ddim dpm++2m heun"), GUIDANCE (default
# "0 1 3"); an empty value skips that part.
set -euo pipefail
run=${1:?usage: bash scripts/sampler_quality.sh RUN_DIR [COUNT] [OUT_DIR]}
count=${2:-1000}
out=${3:-$run/sampler_quality}
cd "$(dirname "$0")/.."
ddpm=${DDPM:-}
if [[ -z $ddpm ]]; then
  for candidate in build-quickstart/ddpm build/ddpm build-cpu/ddpm; do
    [[ -x $candidate ]] && { ddpm=$candidate; break; }
  done
fi
[[ -x $ddpm ]] || { echo "sampler_quality: no ddpm binary; build one (bash scripts/quickstart.sh) or set DDPM=" >&2; exit 2; }
features=${FEATURES:-classifier:pretrained/classifier-fashion-mnist}
evaluations=${EVALUATIONS-10 20 50 100 250 1000}
methods=${METHODS-ancestral ddim dpm++2m heun}
guidance=${GUIDANCE-0 1 3}
mkdir -p "$out/fd" "$out/guidance"
conditional=0
[[ -f $run/classes.json ]] && conditional=1  # written by conditional runs only

# point NAME METRICS OVERRIDES...: one eval, kept as OUT_DIR/NAME.json (NAME: fd/... or guidance/...).
point() {
  local name=$1 metrics=$2
  shift 2
  [[ -s $out/$name.json ]] && return 0
  echo "== $name" >&2
  "$ddpm" eval --run "$run" --metrics "$metrics" --features "$features" --count "$count" "$@" --out "$out/$name.json.tmp"
  mv "$out/$name.json.tmp" "$out/$name.json"
}

if [[ $conditional -gt 0 ]]; then
  for w in $guidance; do
    point "guidance/dpm++2m-20-w$w" fid,accuracy --set sample.method=dpm++2m --set sample.steps=20 --guidance "$w"
  done
fi

fd_metrics=fid
[[ $conditional -gt 0 ]] && fd_metrics=fid,accuracy
for nfe in $evaluations; do
  for method in $methods; do
    steps=$nfe
    [[ $method == heun ]] && steps=$((nfe / 2))  # Heun: 2 steps - 1 evaluations
    point "fd/$method-$steps" "$fd_metrics" --set sample.method="$method" --set sample.steps="$steps" \
      $([[ $conditional -gt 0 ]] && echo "--guidance 0")
  done
done
shopt -s nullglob
fd_points=("$out"/fd/*.json)
guidance_points=("$out"/guidance/*.json)
if ((${#fd_points[@]})); then
  "$ddpm" plot "${fd_points[@]}" --x sampler.evaluations --y metrics.fid --series sampler.method --log xy \
    --title "FD against network evaluations ($count samples)" --out "$out/fd_vs_evaluations.png"
fi
if ((${#guidance_points[@]})); then
  "$ddpm" plot "${guidance_points[@]}" --x sampler.guidance --y metrics.accuracy --series sampler.method \
    --title "share classified as the requested class" --out "$out/accuracy_vs_guidance.png"
  "$ddpm" plot "${guidance_points[@]}" --x sampler.guidance --y metrics.fid --series sampler.method \
    --title "FD against guidance" --out "$out/fd_vs_guidance.png"
fi
