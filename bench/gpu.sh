#!/usr/bin/env bash
# Every GPU measurement of this project in one run (../shared/gpu.md), for the device machine:
# the adapter's ceilings and the tuner (bench/tune: copy bandwidth, best matmul, default vs tuned
# grouped GEMMs per token bucket), the MoE block (bench/moe-block: fused vs naive), the whole
# decoder (bench/decoder), and, where PyTorch with CUDA is installed, the same MoE layer as a
# loop over experts in torch plus torch's copy and matmul ceilings (bench/torch-peer.py). Writes
# everything it prints to $OUT/gpu-bench.txt. Runs on a machine without a GPU too (on lavapipe).
#   bench/gpu-prepare.sh first (here), then on the device: bash bench/gpu.sh
#   MOEC_TUNE_BUDGET=s per block (default 120), MOEC_BENCH_ITERS=n
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
log="$OUT/gpu-bench.txt"
NODE=$(command -v node || true)
if [ -z "$NODE" ] && [ -f .carry/node.xz ]; then xz -dc .carry/node.xz > /tmp/moec-node && chmod +x /tmp/moec-node && NODE=/tmp/moec-node; fi
[ -n "$NODE" ] || { echo "no node here and no .carry/node.xz: run bench/gpu-prepare.sh before carrying the tree"; exit 1; }
[ -d node_modules/webgpu ] || { [ -f .carry/node_modules.tar.xz ] && xz -dc .carry/node_modules.tar.xz | tar -x; } || { echo "no node_modules and no .carry/node_modules.tar.xz"; exit 1; }
[ -f dist/bench/tune.js ] || { echo "no dist/: build (npm run build) and carry dist"; exit 1; }
# A Vulkan loader: the system's, else Debian's libvulkan1 unpacked from .carry; the NVIDIA driver's ICD where it lives in containers.
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1'; then
  deb=$(ls .carry/libvulkan1_*.deb 2>/dev/null | head -1)
  if [ -n "$deb" ]; then rm -rf /tmp/moec-vk && dpkg-deb -x "$deb" /tmp/moec-vk && export LD_LIBRARY_PATH="/tmp/moec-vk/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"; fi
fi
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; fi
export MOEC_TUNE_BUDGET=${MOEC_TUNE_BUDGET:-120}
export MOEC_CACHE_DIR="$OUT/tuning-cache" # the tuning files come back with the results
{ command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; } 2>&1 | tee -a "$log"
status=0
for bench in tune moe-block decoder; do
  echo "== bench/$bench" | tee -a "$log"
  "$NODE" "dist/bench/$bench.js" 2>&1 | grep -v 'artificially reduced' | tee -a "$log" || status=1
done
if command -v python3 >/dev/null && python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  echo "== bench/torch-peer.py" | tee -a "$log"
  python3 bench/torch-peer.py 2>&1 | tee -a "$log" || status=1
else
  echo "== no PyTorch with CUDA here: the torch peer is left out" | tee -a "$log"
fi
echo "results: $log"
exit $status
