// gpt-oss ("gpt_oss"): a biased router (top-k on logits, softmax over the k), clamped SwiGLU experts
// with biases, attention with biases and learned sinks, sliding-window layers alternating with full.
import type { ParamValue } from '../../ir/model-config.js';
import type { ConfigReader } from './config-reader.js';
import { gqaParams, gqaShown, modelHead, readSizes, rmsnorm, type ImportedModel } from './decoder-fields.js';
import { block, blank, field, kindCall, type SpecItem } from './spec-writer.js';

/**
 * layer_types as the language's `full_every`: layer i attends the full context iff (i + 1) % n == 0
 * (0: every layer slides). Undefined when every layer is full. transformers' default alternates.
 */
function fullEvery(r: ConfigReader, layers: number): number | undefined {
  const fallback = Array.from({ length: layers }, (_, i) => ((i + 1) % 2 ? 'sliding_attention' : 'full_attention'));
  const types = r.stringList('layer_types', 'which layers use the sliding window', fallback);
  const unknown = types.find((t) => t !== 'sliding_attention' && t !== 'full_attention');
  if (unknown !== undefined) throw r.unsupported('layer_types', `contains ${JSON.stringify(unknown)}; expected "sliding_attention" or "full_attention"`);
  if (types.length !== layers) throw r.unsupported('layer_types', `has ${types.length} entries, but num_hidden_layers is ${layers}`);
  const full = types.map((t) => t === 'full_attention');
  if (full.every(Boolean)) return undefined;
  for (let n = 0; n <= layers; n++) {
    if (full.every((isFull, i) => isFull === (n > 0 && (i + 1) % n === 0))) return n;
  }
  throw r.unsupported('layer_types', 'mixes sliding and full layers in a pattern .moe cannot express (full attention on every n-th layer, layer i full iff (i + 1) % n == 0)');
}

export function importGptOss(r: ConfigReader): ImportedModel {
  const sizes = readSizes(r);
  const experts = r.int('num_local_experts', 'the number of experts');
  const topK = r.int('num_experts_per_tok', 'the experts per token (top_k)');
  const intermediate = r.int('intermediate_size', 'the expert MLP width');
  const limit = r.number('swiglu_limit', 'the expert activation clamp (limit)', { positive: true, default: 7 });
  const bias = r.bool('attention_bias', 'the attention projection biases', true);
  const every = fullEvery(r, sizes.layers);
  const window: Record<string, ParamValue> = every === undefined ? {} : { sliding_window: r.int('sliding_window', 'the attention window of sliding layers'), full_every: every };
  const gqa = gqaParams(r, sizes.hidden);
  const attention = kindCall('attention', 'gqa', { ...gqa, qkv_bias: bias, o_bias: bias, ...window, sinks: true }, gqaShown);
  const quant = r.has('quantization_config') ? (r.raw('quantization_config') as Record<string, unknown>)['quant_method'] : undefined;
  const notes: string[] = [];
  const head = modelHead(r, sizes, rmsnorm(r, 1e-5), { attention, rotaryDim: gqa['head_dim'] as number }, notes);
  let compile: SpecItem[] | undefined;
  if (quant === 'mxfp4' && sizes.hidden % 32 === 0 && intermediate % 32 === 0) {
    // The checkpoint keeps attention, router, embedding and LM head unquantized (modules_to_not_convert).
    compile = [field('quantize experts', kindCall('quant', 'mxfp4', { group: 32 }, ['group']), 'as the checkpoint stores them')];
  } else if (quant !== undefined) {
    notes.push(`the checkpoint's quantization ${JSON.stringify(quant)} is not carried over (no matching .moe kind or group size)`);
  }
  return {
    summary: `gpt-oss: ${experts} clamped-SwiGLU experts with biases, biased router (top-${topK} logits, softmax over them), attention sinks.`,
    model: [
      ...head,
      blank,
      block('moe', [
        field('experts', String(experts)),
        field('top_k', String(topK)),
        field('router', kindCall('router', 'topk_softmax', { bias: true }, ['bias'])),
        field('expert', kindCall('activation', 'clamped_swiglu', { intermediate, limit }, ['limit'])),
      ]),
    ],
    ...(compile ? { compile } : {}),
    notes,
  };
}
