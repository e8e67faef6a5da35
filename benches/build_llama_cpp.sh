#!/usr/bin/env bash
# Builds the llama.cpp peer for kiln's quantized-inference benchmarks (benches/gguf_vs_llama_cpp.py):
# llama-bench, llama-quantize, llama-completion and llama-simple from the llama.cpp sources vendored in
# llama-cpp-python's source distribution on PyPI (the one place this machine can download from).
#
# Built for this CPU's instruction sets but with AMX OFF: a llama.cpp built with native flags
# crashed on quantized models here (its AMX path; the CPU reports AMX, the VM does not let it
# run). Not used by CI. Output: $KILN_PEERS/llama.cpp/bin (default ~/.cache/kiln-peers).
set -euo pipefail
version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
root="${KILN_PEERS:-$HOME/.cache/kiln-peers}/llama.cpp"
if [ -x "$root/bin/llama-bench" ] && [ -x "$root/bin/llama-quantize" ]; then
  echo "$root/bin"
  exit 0
fi
mkdir -p "$root/src"
cd "$root/src"
if [ ! -d "llama_cpp_python-$version" ]; then
  url=$(curl -sfL --max-time 60 "https://pypi.org/pypi/llama-cpp-python/json" \
    | python3 -c "import json,sys; d=json.load(sys.stdin); print([u['url'] for u in d['releases']['$version'] if u['packagetype']=='sdist'][0])")
  case "$url" in http*) ;; *) url="https://pypi.org/packages/${url#../../packages/}" ;; esac
  curl -sfL --max-time 600 -o sdist.tar.gz "$url"
  tar xzf sdist.tar.gz
  rm sdist.tar.gz
fi
python3 -m pip install --quiet cmake ninja 2>/dev/null || python3 -m pip install --quiet --break-system-packages cmake ninja
src="$root/src/llama_cpp_python-$version/vendor/llama.cpp"
# Instruction sets this machine has, AMX excluded (GGML_NATIVE=OFF so nothing is auto-detected).
flags=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON)
grep -q avx512f /proc/cpuinfo && flags+=(-DGGML_AVX512=ON)
grep -q avx512vbmi /proc/cpuinfo && flags+=(-DGGML_AVX512_VBMI=ON)
grep -q avx512_vnni /proc/cpuinfo && flags+=(-DGGML_AVX512_VNNI=ON)
grep -q avx512_bf16 /proc/cpuinfo && flags+=(-DGGML_AVX512_BF16=ON)
grep -q avx_vnni /proc/cpuinfo && flags+=(-DGGML_AVX_VNNI=ON)
flags+=(-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
cmake -S "$src" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF "${flags[@]}" >&2
cmake --build "$root/build" --target llama-bench llama-quantize llama-completion llama-simple -j "$(nproc)" >&2
mkdir -p "$root/bin"
for b in llama-bench llama-quantize llama-completion llama-simple; do
  [ -x "$root/build/bin/$b" ] && cp "$root/build/bin/$b" "$root/bin/"
done
echo "$root/bin"
