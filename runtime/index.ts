// The runtime's public API: what a compiled bundle (model.js) is built from, and what a page or
// a Node program may import. Browser-safe: Node-only helpers live in runtime/node/.
export { loadModel, ModelError, type BundleData, type HfSafetensorsWeights, type LoadOptions, type Model } from './bundle.js';
export { inflatePlan } from './bundle-plans.js';
export { openDevice, GpuError, type AdapterSummary, type GpuRuntime, type OpenDeviceOptions } from './device.js';
export { describeHfNaming, hfWeightSource, HfWeightsError, modelTypesMatching, SUPPORTED_MODEL_TYPES, type HfWeightSource, type TensorReader } from './hf-weights.js';
export {
  fetchHfCheckpoint, hfWeightsFromSafetensors, hfWeightsFromUrl, safetensorsReader, type FetchedCheckpoint, type SafetensorsBytes,
} from './hf-checkpoint.js';
export { createMoeBlockExecutor, type MoeBlockExecutor } from './moe-executor.js';
export type { MoeBlockPlan, RowRange, WeightSource } from './plan.js';
export { encodeSafetensors, parseSafetensors, readTensorF32, SafetensorsError, type SafetensorsFile } from './safetensors.js';
