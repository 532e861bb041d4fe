// README.md of a bundle: how to load it in Node and in a browser, generate tokens with the whole
// model (or why the bundle holds MoE blocks only), and run one MoE block.
import type { BundleData } from '../../runtime/bundle.js';
import type { ModelSummary } from './bundle-data.js';

/** What the whole model is and how to generate with it; or why the bundle has MoE blocks only. */
function wholeModelSection(model: ModelSummary, modelType: string): string {
  if (!model.available) {
    return `This bundle holds the MoE blocks only: the whole model could not be compiled (${model.reason}).
\`runMoeBlock\` runs; \`forward\` and \`generate\` throw a \`ModelError\` saying so.
`;
  }
  return `The whole model: vocabulary ${model.vocab}, a context of ${model.context} positions (KV cache in ${model.kvCache};
\`compile { context = N }\` changes it), ${model.dispatchesPerToken} GPU dispatches per generated token (${model.greedyDispatchesPerToken} when greedy). \`forward(ids)\` gives
logits, \`generate(ids, options)\` token ids sampled on the GPU (only each id is read back).

## Generating tokens

\`\`\`js
import { readFileSync } from 'node:fs';
import { create, globals } from 'webgpu';
import { load, hfWeightsFromSafetensors } from './model.js';

Object.assign(globalThis, globals);
const gpu = create([]);
const weights = hfWeightsFromSafetensors('${modelType}', [
  { name: 'model.safetensors', bytes: readFileSync('checkpoint/model.safetensors') },
]);
const model = await load({ gpu, weights });    // checks the checkpoint holds every weight of the model
const logits = await model.forward([1, 2, 3]); // [3, ${model.vocab}]; the ids join the session (reset() starts a new one)
for await (const id of model.generate([1, 2, 3], { maxTokens: 16, temperature: 0.8, topK: 20, seed: 42 })) {
  console.log(id);                             // the same seed gives the same ids, here and in a browser
}
model.dispose();
\`\`\`

\`generate\` starts a fresh session each call; its options are \`maxTokens\` (required), \`temperature\` (0, the default, is
greedy), \`topK\` (0 = off), \`topP\` (1 = off), \`seed\` and \`stop\` (ids that end the generation). An id outside the
vocabulary, a prompt plus \`maxTokens\` past the context, or an option that is not a whole number where one is needed
is a \`ModelError\`, thrown before anything runs. In a browser, pass the checkpoint's URL as \`weights\` (see below).
`;
}

export function bundleReadme(data: BundleData, modelTypes: string[], model: ModelSummary): string {
  const first = data.moeLayers[0] ?? 0;
  const hidden = data.config.hidden;
  const modelType = modelTypes[0] ?? '<model_type>';
  return `# ${data.config.name} (moec bundle)

Compiled by moec ${data.moecVersion} from a spec with sha256 \`${data.specSha256}\`.

- \`model.js\`: one ES module (runtime, plans and WGSL kernels; no Node built-ins), for Node and browsers.
- \`model.d.ts\`: its typed API. \`manifest.json\`: kernels with hashes, tuning, what each plan dispatches, and the weight layout.

${wholeModelSection(model, modelType)}
MoE layers: ${data.moeLayers.join(', ') || 'none'}. Hidden size: ${hidden}.${data.config.compile.dtype === 'f16'
    ? '\nActivations are stored in f16 (compiled with `dtype = f16`): `load()` refuses an adapter without the `shader-f16` feature.'
    : ''}
Weights come from a Hugging Face checkpoint (safetensors; F32, F16 or BF16) of model_type
${modelTypes.length ? modelTypes.map((t) => `\`${t}\``).join(', ') : '(none supported)'}; see \`manifest.json\` for the tensors read.

## Node (WebGPU through the \`webgpu\` package): one MoE block

\`\`\`js
import { readFileSync } from 'node:fs';
import { create, globals } from 'webgpu';
import { load, hfWeightsFromSafetensors } from './model.js';

Object.assign(globalThis, globals);  // GPUBufferUsage, GPUMapMode, ...
const gpu = create([]);              // keep this reference alive while the model is in use
const weights = hfWeightsFromSafetensors('${modelType}', [
  { name: 'model.safetensors', bytes: readFileSync('checkpoint/model.safetensors') },
]);
const model = await load({ gpu, weights });
const tokens = 4;
const out = await model.runMoeBlock(${first}, new Float32Array(tokens * ${hidden}), tokens); // [tokens, ${hidden}]
model.destroy();
\`\`\`

Any object with \`readF32(name, shape, rows?)\` can be \`weights\` (a \`WeightSource\`): it is asked for each IR
weight by name and shape, in the IR layout listed in \`manifest.json\`, one expert shard (or part of one) at a time
(\`rows\`: \`{ begin, end }\` of the leading dim; a source may ignore it and return the whole weight).
Without a GPU, Dawn runs on a software Vulkan driver (lavapipe: set \`VK_ICD_FILENAMES\`).
\`moec run <this dir> --weights <checkpoint> --layer ${first} --input in.safetensors --output out.safetensors\`
does the above from the command line.

## Browser (navigator.gpu)

Serve this directory and the checkpoint (config.json with model.safetensors, or shards with
model.safetensors.index.json) over HTTP(S), then:

\`\`\`html
<script type="module">
  import { load } from './model.js';
  const model = await load({ weights: new URL('checkpoint/', location.href).href }); // reads config.json + the index
${model.available ? `  for await (const id of model.generate([1, 2, 3], { maxTokens: 16, seed: 42 })) document.body.append(\`\${id} \`);
` : ''}  const tokens = 4;
  const out = await model.runMoeBlock(${first}, new Float32Array(tokens * ${hidden}), tokens);
</script>
\`\`\`

Shards are read with HTTP Range requests: ${model.available ? 'every shard\'s header at load (to check the checkpoint against the\nwhole model\'s weights), then' : 'a shard\'s header when a layer first needs it, then'} only the tensors a part of the model needs when it first runs
(at most 64 MiB a request; \`fetchOptions: { maxRequestBytes }\` changes it). A server that
ignores Range gets one whole-file GET per shard instead, reported to \`fetchOptions.onWarning\` (default
\`console.warn\`). Or fetch the files yourself and pass \`{ modelType, files: [{ name, bytes }] }\` as \`weights\`.
WebGPU needs a secure context (https or localhost).
${loadTuningSection(data)}`;
}

/** How to tune on the user's GPU at load, when the bundle has load-time candidates. */
function loadTuningSection(data: BundleData): string {
  const sets = data.loadCandidates?.sets.length ?? 0;
  if (!sets) return '';
  return `
## Tuning on the user's GPU

This bundle holds ${sets} more plan set(s) with other grouped GEMM tiles (\`moec compile --load-candidates\`).
\`load({ weights, tune: 'first-load', tuneBudgetMs: 5000 })\` times them on the adapter at hand (random
weights, within the budget) on the first load, keeps the default unless one is faster beyond noise, and
stores the choice for the next load: in IndexedDB in browsers; in Node pass \`tuneStore\` (moec's
\`nodeTuneStore()\` from \`moec/node-tune-store\`, or any object with \`location\`, \`where(key)\`,
\`get(key, warn)\`, \`put(key, record)\`). \`model.tuning\` and \`model.loadTuning\` say what was chosen and how.
`;
}
