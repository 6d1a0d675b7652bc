#!/usr/bin/env bash
# Installs the Debian packages the project needs, when they are missing. Safe to run again.
set -euo pipefail

packages=(
  build-essential cmake pkg-config   # toolchain
  catch2                             # tests
  nlohmann-json3-dev                 # configs, safetensors headers
  libstb-dev                         # PNG/JPEG write
  libpng-dev                         # PNG read (libpng)
  libturbojpeg0-dev                  # JPEG read (libjpeg-turbo)
  libopenblas-dev                    # CPU GEMM
  libopenblas-openmp-dev             # ... its OpenMP build, sharing our thread pool
  zlib1g-dev                         # gzipped datasets
  libopenmpi-dev openmpi-bin         # data-parallel training: mpirun and MPI_Allreduce
  openssh-client                     # ... Open MPI's launcher wants an ssh agent, even on one machine
  dataset-fashion-mnist              # the default training data (/usr/share/datasets/fashion-mnist)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "setup: all packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
