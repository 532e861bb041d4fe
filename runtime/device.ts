/// <reference types="@webgpu/types" />
// Device setup shared by Node (Dawn, GPU passed in) and browsers (navigator.gpu).

/** WebGPU's spec defaults for the limits a MoE bundle cares about. */
export const DEFAULT_LIMITS = {
  maxStorageBufferBindingSize: 134217728,
  maxBufferSize: 268435456,
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeInvocationsPerWorkgroup: 256,
  maxStorageBuffersPerShaderStage: 8,
  maxComputeWorkgroupSizeX: 256,
} as const;

export type RaisedLimitName = keyof typeof DEFAULT_LIMITS;

/** Features used when the adapter has them; kernels must have a path without each. */
export const OPTIONAL_FEATURES = ['timestamp-query', 'shader-f16', 'subgroups'] as const;

export interface OpenDeviceOptions {
  /** The GPU object; in Node pass createNodeGpu() from runtime/node/dawn.js. Default: navigator.gpu. */
  gpu?: GPU;
  /** Request no higher limits, to prove kernels work under WebGPU's defaults. */
  defaultLimits?: boolean;
  /** Request none of OPTIONAL_FEATURES. */
  noOptionalFeatures?: boolean;
  powerPreference?: GPUPowerPreference;
  label?: string;
}

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
}

export class GpuError extends Error {
  override readonly name = 'GpuError';
}

export interface GpuRuntime {
  /** Held so the GPU instance outlives the device (Dawn crashes if it is collected first). */
  readonly gpu: GPU;
  readonly adapter: GPUAdapter;
  readonly device: GPUDevice;
  readonly info: AdapterSummary;
  readonly limits: GPUSupportedLimits;
  readonly features: ReadonlySet<string>;
  /** Throws (and clears) every uncaptured error and device loss seen so far. */
  checkErrors(): void;
  /** Waits for submitted work, then checkErrors(): errors surface asynchronously. */
  settle(): Promise<void>;
  destroy(): void;
}

// A device keeps its GPU instance reachable even if the caller drops the runtime object.
const gpuOfDevice = new WeakMap<GPUDevice, GPU>();

function defaultGpu(): GPU {
  const gpu = typeof navigator === 'undefined' ? undefined : (navigator as Navigator).gpu;
  if (!gpu) {
    throw new GpuError(
      'WebGPU is not available: in a browser it needs navigator.gpu; ' +
        'in Node pass { gpu: createNodeGpu() } from runtime/node/dawn.js',
    );
  }
  return gpu;
}

async function summarizeAdapter(adapter: GPUAdapter): Promise<AdapterSummary> {
  // Older browsers only have requestAdapterInfo(); newer ones and Dawn have adapter.info.
  const legacy = adapter as GPUAdapter & { requestAdapterInfo?: () => Promise<GPUAdapterInfo> };
  const info = adapter.info ?? (await legacy.requestAdapterInfo?.());
  return {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
  };
}

/** The higher limits to request: only those the adapter raises above the default. */
/**
 * Throws a GpuError unless the device has every feature in `features` (a plan's, or a bundle's);
 * `who` names the plan or bundle in the message.
 */
export function requireFeatures(rt: GpuRuntime, who: string, features: readonly string[]): void {
  for (const feature of features) {
    if (rt.features.has(feature)) continue;
    const adapter = [rt.info.vendor, rt.info.architecture, rt.info.description].filter(Boolean).join(' / ');
    throw new GpuError(`${who}: the kernels need the adapter feature ${feature}` +
      (feature === 'shader-f16' ? ' (they store activations in f16: compiled with `dtype = f16`)' : '') +
      `, which this adapter (${adapter}) lacks` + (feature === 'shader-f16' ? '; compile with `dtype = f32` for it' : ''));
  }
}

export function raisedLimits(adapter: GPUAdapter): Partial<Record<RaisedLimitName, number>> {
  const raised: Partial<Record<RaisedLimitName, number>> = {};
  for (const name of Object.keys(DEFAULT_LIMITS) as RaisedLimitName[]) {
    const available = adapter.limits[name];
    if (typeof available === 'number' && available > DEFAULT_LIMITS[name]) raised[name] = available;
  }
  return raised;
}

export async function openDevice(options: OpenDeviceOptions = {}): Promise<GpuRuntime> {
  const gpu = options.gpu ?? defaultGpu();
  const adapter = await gpu.requestAdapter(
    options.powerPreference ? { powerPreference: options.powerPreference } : undefined,
  );
  if (!adapter) {
    throw new GpuError(
      'no WebGPU adapter found (without a GPU, install a software Vulkan driver such as lavapipe ' +
        'and set VK_ICD_FILENAMES; see shared/webgpu-on-cpu.md)',
    );
  }
  const requiredFeatures = options.noOptionalFeatures
    ? []
    : OPTIONAL_FEATURES.filter((feature) => adapter.features.has(feature));
  const requiredLimits = options.defaultLimits ? {} : raisedLimits(adapter);
  const device = await adapter.requestDevice({
    label: options.label ?? 'moec',
    requiredFeatures,
    requiredLimits,
  });
  gpuOfDevice.set(device, gpu);

  const errors: string[] = [];
  device.addEventListener('uncapturederror', (event) => {
    errors.push((event as GPUUncapturedErrorEvent).error.message);
  });
  void device.lost.then((lost) => {
    if (lost.reason !== 'destroyed') errors.push(`device lost (${lost.reason}): ${lost.message}`);
  });

  const checkErrors = (): void => {
    if (errors.length === 0) return;
    const messages = errors.splice(0, errors.length);
    throw new GpuError(`${messages.length} WebGPU error(s):\n${messages.join('\n')}`);
  };
  return {
    gpu,
    adapter,
    device,
    info: await summarizeAdapter(adapter),
    limits: device.limits,
    features: new Set(device.features),
    checkErrors,
    async settle() {
      await device.queue.onSubmittedWorkDone();
      checkErrors();
    },
    destroy() {
      device.destroy();
    },
  };
}

/**
 * Runs `create` inside a validation error scope and throws a GpuError naming `what`
 * if it produced a validation error (errors inside a scope never reach uncapturederror).
 */
export async function withValidationScope<T>(device: GPUDevice, what: string, create: () => T): Promise<T> {
  device.pushErrorScope('validation');
  let result: T;
  try {
    result = create();
  } catch (thrown) {
    await device.popErrorScope(); // keep the scope stack balanced
    throw thrown;
  }
  const error = await device.popErrorScope();
  if (error) throw new GpuError(`${what}: ${error.message}`);
  return result;
}

/** Compiles WGSL and builds a compute pipeline, turning shader errors into `label:line:col: message`. */
export async function createComputePipelineChecked(
  device: GPUDevice,
  label: string,
  code: string,
  entryPoint = 'main',
  constants?: Record<string, number>,
): Promise<GPUComputePipeline> {
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ label, code });
  const moduleError = await device.popErrorScope();
  if (moduleError) throw new GpuError(await describeShaderErrors(module, label, code, moduleError.message));
  return withValidationScope(device, label, () =>
    device.createComputePipeline({ label, layout: 'auto', compute: { module, entryPoint, constants } }),
  );
}

async function describeShaderErrors(module: GPUShaderModule, label: string, code: string, fallback: string): Promise<string> {
  const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
  const lines = code.split('\n');
  if (errors.length === 0) return `${label}: ${fallback}${pastedFrom(lines, 0)}`;
  return errors
    .map((m) => `${label}:${m.lineNum}:${m.linePos}: ${m.message}${pastedFrom(lines, m.lineNum)}\n  ${lines[m.lineNum - 1] ?? ''}\n  ${' '.repeat(Math.max(0, m.linePos - 1))}^`)
    .join('\n');
}

/** Codegen brackets WGSL it pastes in from elsewhere (a plugin's router partial) with these lines, so errors name where it came from. */
export const PASTED_WGSL_BEGIN = '// moec: WGSL from ';
export const PASTED_WGSL_END = '// moec: end of WGSL from ';

/** ` (line n of the WGSL rendered from <origin>)` for a line inside pasted WGSL, else the origins the kernel pastes in, if any. */
function pastedFrom(lines: string[], line: number): string {
  const origins: string[] = [];
  let begin = -1;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.startsWith(PASTED_WGSL_BEGIN)) {
      begin = i + 1;
      origins.push(lines[i]!.slice(PASTED_WGSL_BEGIN.length));
    } else if (lines[i]!.startsWith(PASTED_WGSL_END) && begin >= 0) {
      if (line > begin && line <= i) return ` (line ${line - begin} of the WGSL rendered from ${origins.at(-1)})`;
      begin = -1;
    }
  }
  return origins.length ? ` (this kernel includes WGSL from ${origins.join(', ')})` : '';
}
