#!/usr/bin/env bash
# Run here, before bench/gpu.sh runs on a GPU machine that has no network and may have no Node
# (../shared/gpu.md): builds, then puts into .carry/ (git-ignored) what that machine lacks: this
# Node binary, the runtime's npm packages (Dawn for linux-x64 only, the rest of node_modules left
# out), and Debian's libvulkan1. Carry `dist` and `.carry` with the working tree (under 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.carry/' .git/info/exclude 2>/dev/null || echo '/.carry/' >> .git/info/exclude
node scripts/setup.mjs >/dev/null
mkdir -p .carry
[ -f .carry/node.xz ] || xz -T2 -9 -c "$(readlink -f "$(command -v node)")" > .carry/node.xz
# The packages dist/bench and dist/cli load at run time; Dawn's other platforms stay behind.
packages="webgpu handlebars chevrotain lodash-es cli-progress string-width strip-ansi ansi-regex emoji-regex is-fullwidth-code-point highs @huggingface @chevrotain"
present=$(for p in $packages; do [ -e "node_modules/$p" ] && echo "node_modules/$p"; done)
tar -c --exclude='node_modules/webgpu/dist/darwin-*' --exclude='node_modules/webgpu/dist/win32-*' --exclude='node_modules/webgpu/dist/linux-arm64' $present | xz -T2 -6 > .carry/node_modules.tar.xz
if ! ls .carry/libvulkan1_*.deb >/dev/null 2>&1; then (cd .carry && apt-get download libvulkan1 >/dev/null 2>&1) || echo "gpu-prepare: could not download libvulkan1 (the GPU machine must have a Vulkan loader)"; fi
du -ch dist .carry | tail -1
