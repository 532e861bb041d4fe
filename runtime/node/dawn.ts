// Node-only: WebGPU through Dawn (the `webgpu` npm package).

import { create, globals } from 'webgpu';

// Dawn crashes ("futex facility returned an unexpected error code") if its instance
// is garbage-collected while a device from it is busy, so the instance lives here for good.
let nodeGpu: GPU | undefined;

/**
 * Returns the process-wide Dawn GPU, creating it on first call. Also installs
 * GPUBufferUsage, GPUMapMode, ... on globalThis, as a browser has them.
 * `dawnFlags` (e.g. ['enable-dawn-features=...']) only apply on the first call.
 */
export function createNodeGpu(dawnFlags: string[] = []): GPU {
  if (!nodeGpu) {
    Object.assign(globalThis, globals);
    nodeGpu = create(dawnFlags);
  }
  return nodeGpu;
}
