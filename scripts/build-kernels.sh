#!/usr/bin/env bash
# Compiles the CUDA kernels (engine/src/main/cuda/*.cu) into one fatbin that the engine jar carries
# as a resource: machine code for sm_80 (A100 and later Ampere/Ada) and sm_90a (H100/H200, with the
# Hopper-only instructions) plus compute_90 PTX that newer GPUs compile at load.
#
#   scripts/build-kernels.sh SOURCE_DIR OUTPUT_FATBIN
#   scripts/build-kernels.sh --find-nvcc     prints the nvcc it would use; fails where there is none
#
# Run by Maven (engine, generate-resources). Without nvcc it says so in one line and succeeds: the
# jar then runs on the CPU only. With nvcc, a compile error fails the build. COIL_KERNELS=skip (set by
# ./coil on a machine with no NVIDIA GPU) leaves them out too, saying so.
set -euo pipefail

# nvcc: $NVCC, then PATH, CUDA_HOME, CUDA_PATH and /usr/local/cuda; nothing where none is there.
find_nvcc() {
    local candidate
    for candidate in "${NVCC:-}" "$(command -v nvcc 2>/dev/null || true)" "${CUDA_HOME:+$CUDA_HOME/bin/nvcc}" \
            "${CUDA_PATH:+$CUDA_PATH/bin/nvcc}" /usr/local/cuda/bin/nvcc; do
        if [ -n "$candidate" ] && [ -x "$candidate" ]; then
            echo "$candidate"
            return
        fi
    done
}
if [ "${1:-}" = --find-nvcc ]; then
    nvcc=$(find_nvcc)
    [ -n "$nvcc" ] && echo "$nvcc"
    exit
fi

sources=${1:?source folder}
output=${2:?output fatbin}

if [ "${COIL_KERNELS:-}" = skip ]; then
    echo "[coil] GPU kernels not built: no NVIDIA GPU on this machine (COIL_KERNELS=skip); the jar runs on the CPU only."
    exit 0
fi

nvcc=$(find_nvcc)
if [ -z "$nvcc" ]; then
    echo "[coil] GPU kernels not built: nvcc not found (PATH, CUDA_HOME, /usr/local/cuda); the jar runs on the CPU only."
    exit 0
fi

shopt -s nullglob
kernels=("$sources"/*.cu)
if [ ${#kernels[@]} -eq 0 ]; then
    echo "[coil] no CUDA sources in $sources" >&2
    exit 1
fi

# Up to date: nothing under the source folder is newer than the fatbin.
if [ -f "$output" ] && [ -z "$(find "$sources" "$0" -newer "$output" -type f -print -quit)" ]; then
    exit 0
fi

# One translation unit that includes every kernel file: one fatbin, one module to load, and
# helpers in common.cuh compiled once.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unit="$work/coil_kernels.cu"
for kernel in "${kernels[@]}"; do
    echo "#include \"$(cd "$(dirname "$kernel")" && pwd)/$(basename "$kernel")\"" >> "$unit"
done

mkdir -p "$(dirname "$output")"
start=$(date +%s)
"$nvcc" -fatbin -O3 -std=c++17 --threads 0 -I "$sources" \
    -gencode=arch=compute_80,code=sm_80 \
    -gencode=arch=compute_90a,code=sm_90a \
    -gencode=arch=compute_90,code=compute_90 \
    -o "$work/coil.fatbin" "$unit"
mv "$work/coil.fatbin" "$output"
echo "[coil] GPU kernels built with $("$nvcc" --version | grep -o 'release [0-9.]*') in $(( $(date +%s) - start )) s: $output"
