#!/usr/bin/env bash
# Build kiln's CUDA path (`--features cuda`) on a machine with no GPU and no CUDA toolkit.
#
# Usage:
#   scripts/build-cuda.sh                 # setup, then the two default builds (see the end of this file)
#   scripts/build-cuda.sh --setup-only    # only prepare the toolkit; prints the env to `eval`
#   scripts/build-cuda.sh <cargo args>    # setup, then `cargo <cargo args>` in the CUDA env, e.g.
#   scripts/build-cuda.sh test --no-run -p kiln-infer --features cuda
#
# Re-runnable: every step checks whether its result is already there. Nothing is installed system-wide;
# everything lives under $KILN_CUDA_HOME (default ~/.cache/kiln-cuda), and the build goes to its own
# target dir ($CARGO_TARGET_DIR, default: a `cuda-target` folder beside the repo) so that it never
# touches or invalidates the normal CPU build in ./target (a toolkit change reruns build scripts).
#
# Knobs (environment):
#   KILN_CUDA_HOME     where the venv and the stub live           (~/.cache/kiln-cuda)
#   CARGO_TARGET_DIR   target dir for the CUDA build              (<repo>/../cuda-target)
#   CUDA_COMPUTE_CAP   GPU arch the kernels are compiled for      (90 = Hopper: H100/H200)
#   KILN_CUDA_JOBS     cargo jobs and parallel nvcc processes     (1: be gentle to a 2-core box)
#   PYTHON             interpreter used to create the venv        (python3)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KILN_CUDA_HOME="${KILN_CUDA_HOME:-$HOME/.cache/kiln-cuda}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(dirname "$REPO")/cuda-target}"
JOBS="${KILN_CUDA_JOBS:-1}"
PYTHON="${PYTHON:-python3}"
VENV="$KILN_CUDA_HOME/venv"

log() { printf '[build-cuda] %s\n' "$*" >&2; }

# --- 1. CUDA toolkit from PyPI wheels ---------------------------------------------------------------
# Debian `main` has no nvidia-cuda-toolkit, but NVIDIA publishes the toolkit pieces as wheels. Pinned to
# CUDA 13.0: the GPU machines' driver is CUDA 13.0, and the driver must be at least as new as the nvcc
# that produced the PTX (it JIT-compiles the PTX at load time), so never let these float to 13.1+.
#   nvcc + crt + nvvm(cicc/libdevice): the compiler (candle-kernels' build.rs runs it)
#   cuda-runtime: cudart headers and libcudart.so (candle-kernels links `-lcudart`)
#   cccl: thrust/cub/libcu++ headers the kernels include
#   cublas, curand, nvrtc: libraries cudarc links with `-l` (its `dynamic-linking` mode)
# cuRAND's version number is not the CUDA one: 10.4.0.x is the release that ships with CUDA 13.0.
WHEELS=(
  'nvidia-cuda-nvcc==13.0.*'
  'nvidia-nvvm==13.0.*'
  'nvidia-cuda-crt==13.0.*'
  'nvidia-cuda-runtime==13.0.*'
  'nvidia-cuda-cccl==13.0.*'
  'nvidia-cublas==13.0.*'
  'nvidia-cuda-nvrtc==13.0.*'
  'nvidia-curand==10.4.0.*'
)
mkdir -p "$KILN_CUDA_HOME"
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating venv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# A stamp with the exact requirement list skips pip entirely on re-runs (about 1.2 GB installed);
# editing WHEELS above changes the stamp and reinstalls.
STAMP="$KILN_CUDA_HOME/wheels.stamp"
if [[ ! -f "$STAMP" ]] || [[ "$(cat "$STAMP")" != "${WHEELS[*]}" ]]; then
  log "installing CUDA 13.0 wheels (~630 MB download)"
  "$VENV/bin/pip" install --disable-pip-version-check -q "${WHEELS[@]}"
  printf '%s' "${WHEELS[*]}" > "$STAMP"
fi

# The wheels unpack into site-packages/nvidia/cu13/{bin,include,lib,nvvm}: a toolkit-shaped tree.
CUDA_ROOT="$("$VENV/bin/python" - <<'EOF'
import os, nvidia
# `nvidia` is a namespace package: take the first of its paths that holds cu13.
print(next(os.path.join(p, "cu13") for p in nvidia.__path__ if os.path.isdir(os.path.join(p, "cu13"))))
EOF
)"
[[ -x "$CUDA_ROOT/bin/nvcc" ]] || { log "no nvcc under $CUDA_ROOT"; exit 1; }

# --- 2. Make the wheel tree look like a toolkit install ----------------------------------------------
# Wheels only ship the versioned runtime names (libcublas.so.13); the linker's `-lcublas` looks for the
# unversioned dev name libcublas.so. A symlink per library supplies it. (The binary still records the
# SONAME, libcublas.so.13, as NEEDED, so nothing here leaks into run time.)
for so in "$CUDA_ROOT"/lib/lib*.so.*; do
  base="$(basename "$so")"
  case "$base" in *.alt.so*) continue ;; esac   # libnvrtc.alt.*: alternative build, not a link target
  dev="${base%%.so.*}.so"
  [[ -e "$CUDA_ROOT/lib/$dev" ]] || ln -sfn "$base" "$CUDA_ROOT/lib/$dev"
done
# Some tools look in $CUDA_ROOT/lib64 (the toolkit's layout on x86_64); point it at lib.
[[ -e "$CUDA_ROOT/lib64" ]] || ln -sfn lib "$CUDA_ROOT/lib64"

# --- 3. A link-only stub libcuda.so ----------------------------------------------------------------
# candle 0.11 pins cudarc to `dynamic-linking`, so the final link has `-lcuda`. libcuda is the *driver*
# library; it comes with the NVIDIA driver, not with any toolkit wheel, so this machine has none. We
# generate a stub that defines every driver entry point cudarc can reference (names taken from
# cudarc's own bindings, so it always matches the locked cudarc) and give it the soname libcuda.so.1.
# The binary then records NEEDED libcuda.so.1, which the real driver provides on the GPU machine.
# The stub is never used at run time: it sits in lib/stubs (where the real toolkit keeps its own stub
# and where cudarc's build.rs adds a link search path) and must never be put on LD_LIBRARY_PATH.
STUB_DIR="$CUDA_ROOT/lib/stubs"
STUB_SRC="$KILN_CUDA_HOME/libcuda_stub.c"
CUDARC_DIR="$(cd "$REPO" && cargo metadata --format-version 1 --features kiln-model/cuda 2>/dev/null |
  "$VENV/bin/python" -c 'import json,sys,os
m = json.load(sys.stdin)
print(next(os.path.dirname(p["manifest_path"]) for p in m["packages"] if p["name"] == "cudarc"))')"
DRIVER_RS="$CUDARC_DIR/src/driver/sys/mod.rs"
[[ -f "$DRIVER_RS" ]] || { log "cannot find cudarc's driver bindings at $DRIVER_RS"; exit 1; }
"$VENV/bin/python" - "$DRIVER_RS" "$STUB_SRC.new" <<'EOF'
import re, sys
src, out = sys.argv[1], sys.argv[2]
# Each binding has, for the linking modes, `extern "C" { fn cuXxx(...) -> CUresult; }`.
names = sorted(set(re.findall(r'extern "C" \{\s*fn (cu\w+)\(', open(src).read())))
assert len(names) > 300, f"only {len(names)} driver symbols found in {src}: has cudarc's layout changed?"
with open(out, "w") as f:
    f.write("/* Generated by scripts/build-cuda.sh from %s. Link-time stand-in for the driver's\n"
            "   libcuda.so.1; every entry point returns CUDA_ERROR_UNKNOWN (999). Never load it. */\n" % src)
    for n in names:
        f.write("int %s(void) { return 999; }\n" % n)
EOF
if ! cmp -s "$STUB_SRC.new" "$STUB_SRC" || [[ ! -f "$STUB_DIR/libcuda.so" ]]; then
  mv "$STUB_SRC.new" "$STUB_SRC"
  mkdir -p "$STUB_DIR"
  log "compiling stub libcuda.so ($(grep -c '^int ' "$STUB_SRC") symbols)"
  cc -shared -fPIC -O0 -Wl,-soname,libcuda.so.1 -o "$STUB_DIR/libcuda.so" "$STUB_SRC"
else
  rm -f "$STUB_SRC.new"
fi

# --- 4. Environment for cargo ----------------------------------------------------------------------
# nvcc on PATH: cudarc's build.rs runs `nvcc --version` to pick its CUDA-version bindings
#   (`cuda-version-from-build-system`), and cudaforge (candle-kernels' build.rs) runs nvcc.
# CUDA_ROOT/CUDA_PATH/CUDA_HOME: where cudarc's build.rs adds link search paths (lib, lib/stubs, lib64)
#   and where cudaforge looks for the toolkit.
# CUDA_COMPUTE_CAP: cudaforge otherwise asks nvidia-smi, which does not exist here. 90 = sm_90 (Hopper).
# CUDAFORGE_THREADS: how many nvcc processes candle-kernels runs at once (default: half the cores).
export PATH="$CUDA_ROOT/bin:$PATH"
export CUDA_ROOT CUDA_PATH="$CUDA_ROOT" CUDA_HOME="$CUDA_ROOT"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export CUDAFORGE_THREADS="$JOBS"
export CARGO_BUILD_JOBS="$JOBS"

if [[ "${1:-}" == "--setup-only" ]]; then
  log "toolkit ready at $CUDA_ROOT; to build by hand:"
  printf 'export PATH=%q:"$PATH" CUDA_ROOT=%q CUDA_PATH=%q CUDA_HOME=%q CUDA_COMPUTE_CAP=%q CUDAFORGE_THREADS=%q CARGO_BUILD_JOBS=%q CARGO_TARGET_DIR=%q\n' \
    "$CUDA_ROOT/bin" "$CUDA_ROOT" "$CUDA_ROOT" "$CUDA_ROOT" "$CUDA_COMPUTE_CAP" "$JOBS" "$JOBS" "$CARGO_TARGET_DIR"
  exit 0
fi

# --- 5. Build --------------------------------------------------------------------------------------
# The first build compiles candle-kernels: ~12 min on 2 cores, almost all in nvcc/ptxas (the MoE/GGUF
# kernels are compiled to sm_90 SASS, the rest to PTX). Later builds reuse $CARGO_TARGET_DIR.
cd "$REPO"
log "CARGO_TARGET_DIR=$CARGO_TARGET_DIR CUDA_ROOT=$CUDA_ROOT CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP jobs=$JOBS"
if [[ $# -gt 0 ]]; then
  cargo "$@"
else
  cargo build --release -p kiln-cli --features cuda
  cargo test --no-run -p kiln-model --features cuda
  log "binary: $CARGO_TARGET_DIR/release/kiln"
  # At run time the binary needs libcuda.so.1 (driver) and the CUDA 13 libraries it links; print them.
  readelf -d "$CARGO_TARGET_DIR/release/kiln" | grep NEEDED >&2 || true
fi
