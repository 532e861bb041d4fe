// Which Vulkan driver Dawn (the `webgpu` package) should use on this machine.
// Plain Node, no dependencies: scripts/setup.mjs and test/setup/gpu-env.ts both use it.
import { existsSync, readdirSync } from 'node:fs';

const ICD_DIRS = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const LIB_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib'];

/** Every registered Vulkan ICD manifest (full paths). */
export function listVulkanIcds() {
  return ICD_DIRS.filter(existsSync).flatMap((dir) =>
    readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => `${dir}/${f}`));
}

/** lavapipe's manifest (lvp_icd.json or lvp_icd.<arch>.json), if installed. */
export function findLavapipeIcd() {
  return listVulkanIcds().find((p) => /\/lvp_icd[^/]*\.json$/.test(p));
}

const isSoftwareIcd = (p) => /\/(lvp_icd|vk_swiftshader_icd)[^/]*\.json$/.test(p);

/** A hardware ICD counts only with a device node: mesa-vulkan-drivers installs intel/radeon ICDs everywhere. */
export function hasHardwareGpu() {
  const gpuNode = existsSync('/dev/nvidiactl') ||
    (existsSync('/dev/dri') && readdirSync('/dev/dri').some((f) => f.startsWith('renderD')));
  return gpuNode && listVulkanIcds().some((p) => !isSoftwareIcd(p));
}

/** Whether the Vulkan loader (libvulkan.so.1) is installed. */
export function hasVulkanLoader() {
  return LIB_DIRS.some((dir) => existsSync(`${dir}/libvulkan.so.1`));
}

/** Env vars Dawn needs: on Linux without a GPU, point the loader at lavapipe (or Chromium's SwiftShader). */
export function vulkanIcdEnv(env = process.env) {
  if (process.platform !== 'linux' || env.VK_ICD_FILENAMES || env.VK_DRIVER_FILES) return {};
  if (hasHardwareGpu()) return {};
  const icd = findLavapipeIcd() ?? (existsSync(SWIFTSHADER_ICD) ? SWIFTSHADER_ICD : undefined);
  return icd ? { VK_ICD_FILENAMES: icd } : {};
}
