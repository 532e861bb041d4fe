// The runtime's public API: what a compiled bundle (model.js) is built from, and what a page or
// a Node program may import. Browser-safe: Node-only helpers live in runtime/node/.
export { loadModel, ModelError, type BundleData, type HfSafetensorsWeights, type LoadOptions, type Model } from './bundle.js';
export { inflateModelPlan, inflatePlan, type StoredModelPlan } from './bundle-plans.js';
export type { LoadTuningReport } from './tuning/first-load.js';
export { indexedDbTuneStore } from './tuning/indexeddb-store.js';
export type { StoredLoadTuning, TuneStore } from './tuning/tune-store.js';
export { openDevice, GpuError, type AdapterSummary, type GpuRuntime, type OpenDeviceOptions } from './device.js';
export { hfWeightSource, type HfWeightSource, type HfWeightSourceOptions } from './hf-weights.js';
export type { GenerateOptions } from './generate.js';
export { describeHfNaming, modelTypesMatching, SUPPORTED_MODEL_TYPES } from './hf-naming.js';
export { HfWeightsError, type TensorReader } from './tensor-reader.js';
export {
  fetchHfCheckpoint, hfWeightsFromSafetensors, hfWeightsFromUrl, safetensorsReader, type FetchCheckpointOptions, type FetchedCheckpoint,
  type SafetensorsBytes,
} from './hf-checkpoint.js';
export { DEFAULT_MAX_REQUEST_BYTES, type HttpRangeOptions, type TransferCount } from './http-ranges.js';
export { httpTensorReader, type HttpShards, type HttpTensorReader } from './http-tensor-reader.js';
export { createMoeBlockExecutor, type MoeBlockExecutor } from './moe-executor.js';
export type { MoeBlockPlan, RowRange, WeightSource } from './plan.js';
export { parseSafetensors, SafetensorsError, type SafetensorsFile } from './safetensors.js';
export { encodeSafetensors } from './safetensors-encode.js';
export { readTensorBytes, readTensorF32 } from './safetensors-read.js';
