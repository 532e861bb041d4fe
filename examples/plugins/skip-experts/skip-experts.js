// Dynamic expert skipping ("Not All Experts are Equal", Lu et al., ACL 2024) as a moec plugin: after
// the router, a token's slot k is dropped (id -1, weight 0) when its routing weight is below
// beta times the token's largest one, so the experts never run for it. One op with its shape rule,
// reference semantics and WebGPU kernel, and one pass that puts the op after every moe.route.
import {
  declareBindings, definePlugin, expectShape, f32Array, f32Literal, forEachFunction, GraphRewriter, i32Array,
  IRTypeError, renderTemplateSource, tokenExpr, TOKENS, u32Array,
} from 'moec/plugin';

/** @typedef {import('moec/plugin').MoecPlugin} MoecPlugin */
/** @typedef {import('moec/plugin').Graph} Graph */
/** @typedef {import('moec/plugin').HostTensor} HostTensor */

/** @typedef {{ beta?: number, renormalize?: boolean }} SkipOptions */

/** The default threshold: a second expert below 0.3 of the first is skipped. */
export const DEFAULT_BETA = 0.3;
const OPCODE = 'moe.skip_experts';
const ORIGIN = 'examples/plugins/skip-experts/skip-experts.js';
const WORKGROUP = 64;

/**
 * The op's attributes, checked.
 * @param {Record<string, unknown>} attrs
 * @returns {{ beta: number, renormalize: boolean }}
 */
function readAttrs(attrs) {
  const beta = attrs['beta'];
  if (typeof beta !== 'number' || !(beta >= 0 && beta <= 1)) throw new IRTypeError(`beta must be in [0, 1] (the top expert is never skipped), got ${String(beta)}`);
  const renormalize = attrs['renormalize'];
  if (typeof renormalize !== 'boolean') throw new IRTypeError('attribute renormalize must be true or false');
  return { beta, renormalize };
}

/** @type {import('moec/plugin').OpDefinition} */
const skipDefinition = {
  doc: 'Dynamic expert skipping: slot k becomes (-1, 0) when its weight < beta * the token\'s largest weight; ' +
    'renormalize scales the kept weights so the token\'s weight sum is unchanged. skipped_slots[t] counts the slots dropped.',
  inputNames: () => ['route_ids', 'routing_weights'],
  outputNames: ['route_ids', 'routing_weights', 'skipped_slots'],
  infer: ({ route_ids: ids, routing_weights: weights }, attrs) => {
    readAttrs(attrs);
    const k = ids.shape[1];
    if (ids.shape.length !== 2 || typeof k !== 'number') throw new IRTypeError(`route_ids must be [${TOKENS}, k], got rank ${ids.shape.length}`);
    expectShape('route_ids', ids, [TOKENS, k]);
    expectShape('routing_weights', weights, [TOKENS, k]);
    if (ids.dtype !== 'i32') throw new IRTypeError(`route_ids must be i32, got ${String(ids.dtype)}`);
    if (weights.dtype !== 'f32') throw new IRTypeError(`routing_weights must be f32, got ${String(weights.dtype)}`);
    return [{ shape: [TOKENS, k], dtype: 'i32' }, { shape: [TOKENS, k], dtype: 'f32' }, { shape: [TOKENS], dtype: 'u32' }];
  },
};

/**
 * One token's slots, in f32 exactly as the kernel computes them (same comparisons, sums in slot
 * order), so the CPU reference and the GPU agree on every skip decision.
 * @param {ArrayLike<number>} ids @param {ArrayLike<number>} weights @param {number} beta @param {boolean} renormalize
 * @returns {{ ids: number[], weights: number[], skipped: number }}
 */
export function skipSlots(ids, weights, beta, renormalize) {
  const f = Math.fround;
  let wmax = 0;
  let have = false;
  for (let k = 0; k < ids.length; k++) {
    if (ids[k] !== -1 && (!have || weights[k] > wmax)) [wmax, have] = [weights[k], true];
  }
  const threshold = f(f(beta) * wmax);
  const outIds = Array.from(ids);
  const outWeights = Array.from(weights, f);
  let skipped = 0;
  let total = 0;
  let kept = 0;
  for (let k = 0; k < ids.length; k++) {
    if (ids[k] === -1) continue;
    total = f(total + outWeights[k]);
    if (outWeights[k] < threshold) {
      outIds[k] = -1;
      outWeights[k] = 0;
      skipped++;
    } else {
      kept = f(kept + outWeights[k]);
    }
  }
  if (renormalize && skipped > 0) {
    const scale = f(total / kept);
    for (let k = 0; k < ids.length; k++) if (outIds[k] !== -1) outWeights[k] = f(outWeights[k] * scale);
  }
  return { ids: outIds, weights: outWeights, skipped };
}

/** @type {import('moec/plugin').PluginOp['interpret']} */
function interpretSkip({ inputs, attrs }) {
  const { beta, renormalize } = readAttrs(attrs);
  const ids = /** @type {HostTensor} */ (inputs['route_ids']);
  const weights = /** @type {HostTensor} */ (inputs['routing_weights']);
  const [tokens, k] = /** @type {[number, number]} */ (ids.shape);
  const outIds = new Int32Array(tokens * k);
  const outWeights = new Float32Array(tokens * k);
  const skipped = new Int32Array(tokens);
  for (let t = 0; t < tokens; t++) {
    const slots = skipSlots(ids.data.subarray(t * k, (t + 1) * k), weights.data.subarray(t * k, (t + 1) * k), beta, renormalize);
    outIds.set(slots.ids, t * k);
    outWeights.set(slots.weights, t * k);
    skipped[t] = slots.skipped;
  }
  return [{ shape: [tokens, k], data: outIds }, { shape: [tokens, k], data: outWeights }, { shape: [tokens], data: skipped }];
}

// One invocation per token; no atomics: each token writes its own skipped_slots word and the host sums them.
const KERNEL_TEMPLATE = `// moe.skip_experts (plugin skip-experts): slot k of token t becomes (-1, 0) when its routing weight
// is below BETA times the token's largest{{#if renormalize}}; the kept weights are then scaled so the token's sum is unchanged{{/if}}.
{{header}}
const TOPK = {{topK}}u;
const BETA = {{beta}};

@compute @workgroup_size({{workgroupSize}})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.x;
  if (t >= params.tokens) {
    return;
  }
  let base = t * TOPK;
  var wmax = 0.0;
  var have = false;
  for (var k = 0u; k < TOPK; k++) {
    let w = routing_weights[base + k];
    if (route_ids[base + k] != -1 && (!have || w > wmax)) {
      wmax = w;
      have = true;
    }
  }
  let threshold = BETA * wmax;
  var ids: array<i32, TOPK>;
  var weights: array<f32, TOPK>;
  var skipped = 0u;
  var total = 0.0;
  var kept = 0.0;
  for (var k = 0u; k < TOPK; k++) {
    ids[k] = route_ids[base + k];
    weights[k] = routing_weights[base + k];
    if (ids[k] == -1) {
      continue;
    }
    total += weights[k];
    if (weights[k] < threshold) {
      ids[k] = -1;
      weights[k] = 0.0;
      skipped++;
    } else {
      kept += weights[k];
    }
  }
{{#if renormalize}}
  if (skipped > 0u) {
    let scale = total / kept;
    for (var k = 0u; k < TOPK; k++) {
      if (ids[k] != -1) {
        weights[k] *= scale;
      }
    }
  }
{{/if}}
  for (var k = 0u; k < TOPK; k++) {
    kept_ids[base + k] = ids[k];
    kept_weights[base + k] = weights[k];
  }
  skipped_slots[t] = skipped;
}
`;

/** @type {import('moec/plugin').KernelEntry} */
const skipKernel = {
  render: (op) => {
    const { beta, renormalize } = readAttrs(op.attrs);
    const topK = /** @type {number} */ (op.inputs[0].type.shape[1]);
    const { header, bindings, uniformBinding } = declareBindings([
      { name: 'route_ids', access: 'read', type: i32Array },
      { name: 'routing_weights', access: 'read', type: f32Array },
      { name: 'kept_ids', access: 'read_write', type: i32Array },
      { name: 'kept_weights', access: 'read_write', type: f32Array },
      { name: 'skipped_slots', access: 'read_write', type: u32Array },
    ]);
    const wgsl = renderTemplateSource(ORIGIN, KERNEL_TEMPLATE, { header, topK, beta: f32Literal(beta), renormalize, workgroupSize: WORKGROUP });
    return { name: `skip_experts_k${topK}_beta${beta}${renormalize ? '_renorm' : ''}`, wgsl, entryPoint: 'main', workgroupSize: [WORKGROUP, 1, 1], bindings, uniformBinding };
  },
  bindings: (op) => ({
    route_ids: op.inputs[0], routing_weights: op.inputs[1], kept_ids: op.outputs[0], kept_weights: op.outputs[1], skipped_slots: op.outputs[2],
  }),
  grid: () => ({ kind: 'fixed', x: tokenExpr(1, 0, WORKGROUP), y: tokenExpr(0, 1), z: tokenExpr(0, 1) }),
  label: (op) => `skip experts (beta ${op.attrs['beta']})`,
};

/**
 * Puts moe.skip_experts between every moe.route and the ops that read its outputs (once: a
 * router already followed by one is left alone).
 * @param {Graph} f @param {{ beta: number, renormalize: boolean }} attrs @param {Record<string, import('moec/plugin').OpDefinition>} ops
 * @returns {Graph}
 */
function insertSkips(f, attrs, ops) {
  const skipped = new Set(f.ops.filter((op) => op.opcode === OPCODE).map((op) => op.inputs[0].id));
  const r = new GraphRewriter(f, ops);
  /** @type {Map<number, import('moec/plugin').Value>} */
  const replaced = new Map();
  const current = (/** @type {import('moec/plugin').Value} */ v) => replaced.get(v.id) ?? v;
  for (const op of f.ops) {
    r.keep({ ...op, inputs: op.inputs.map(current) });
    if (op.opcode !== 'moe.route' || skipped.has(op.outputs[0].id)) continue;
    const [ids, weights] = op.outputs;
    const prefix = ids.name.replace(/\.?route_ids$/, '');
    const at = (/** @type {string} */ name) => (prefix ? `${prefix}.${name}` : name);
    const [keptIds, keptWeights] = r.emit(OPCODE, [ids, weights], attrs, [at('kept_route_ids'), at('kept_routing_weights'), at('skipped_slots')]);
    replaced.set(ids.id, keptIds);
    replaced.set(weights.id, keptWeights);
  }
  return r.finish({ outputs: f.outputs.map(current) });
}

/**
 * The plugin with a given threshold: `export default skipExperts({ beta: 0.5 })` in a file the
 * spec names (`compile { plugins = ["./my-skip.js"] }`) sets beta for that spec.
 * @param {SkipOptions} [options]
 * @returns {MoecPlugin}
 */
export function skipExperts({ beta = DEFAULT_BETA, renormalize = false } = {}) {
  const attrs = { beta, renormalize };
  readAttrs(attrs);
  return definePlugin({
    name: 'skip-experts',
    ops: { [OPCODE]: { definition: skipDefinition, interpret: interpretSkip, kernel: skipKernel } },
    passes: [{
      after: 'quantize-weights',
      pass: {
        name: 'skip-experts',
        description: `Insert moe.skip_experts (beta = ${beta}${renormalize ? ', renormalized' : ''}) after every moe.route.`,
        run: (module, context) => forEachFunction(module, (f) => insertSkips(f, attrs, context.ops)),
      },
    }],
  });
}

export default skipExperts();
