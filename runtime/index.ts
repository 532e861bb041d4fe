// The runtime's public API: what a compiled bundle (model.js) is built from, and what a page or
// a Node program may import. Browser-safe: Node-only helpers live in runtime/node/.
export { inflatePlan, loadModel, ModelError, type BundleData, type HfSafetensorsWeights, type LoadOptions, type Model } from './bundle.js';
export { openDevice, GpuError, type AdapterSummary, type GpuRuntime, type OpenDeviceOptions } from './device.js';
export { describeHfNaming, hfWeightSource, HfWeightsError, modelTypesProviding, SUPPORTED_MODEL_TYPES, type TensorReader } from './hf-weights.js';
export {
  fetchHfCheckpoint, hfWeightsFromSafetensors, hfWeightsFromUrl, safetensorsReader, type FetchedCheckpoint, type SafetensorsBytes,
} from './hf-checkpoint.js';
export { createMoeBlockExecutor, type MoeBlockExecutor } from './moe-executor.js';
export type { MoeBlockPlan, WeightSource } from './plan.js';
export { encodeSafetensors, parseSafetensors, readTensorF32, SafetensorsError, type SafetensorsFile } from './safetensors.js';
