// One selection partial per router kind: WGSL `fn route_token(row, out)` that turns a token's
// `logits` (and `keys`, `take_best`; see router.wgsl.hbs) into its top_k route_ids/route_weights,
// rendered with the context the kind's params give. A plugin's router brings its own (its source
// text instead of a file) through the registry.
import { boolParam, numParam } from '../../../ir/model-config.js';
import { PASTED_WGSL_BEGIN, PASTED_WGSL_END } from '../../../runtime/device.js';
import { f32Literal, renderTemplate, renderTemplateSource } from '../template.js';
import type { RouterKernelShape } from './router.js';

export interface RouterKernelPartial {
  /** A builtin's file under codegen/kernels/, or a plugin's Handlebars WGSL source and the file it came from. */
  template: { file: string } | { source: string; origin: string };
  /** The template's context; throws for params the kernel cannot run. */
  context(shape: RouterKernelShape): Record<string, unknown>;
}

const file = (kind: string) => ({ file: `router/select-${kind}.wgsl.hbs` });

export const builtinRouterPartials: Readonly<Record<string, RouterKernelPartial>> = {
  softmax_topk: {
    template: file('softmax_topk'),
    context: ({ router: r }) => {
      const nullExperts = numParam(r, 'null_experts');
      if (nullExperts > 0 && numParam(r, 'groups') > 1) throw new Error('softmax_topk: null_experts with groups > 1 is not defined (null experts belong to no group)');
      return { renormalize: boolParam(r, 'renormalize'), scale: f32Literal(numParam(r, 'scale')), nullExperts, grouped: numParam(r, 'groups') > 1 };
    },
  },
  sigmoid_topk: {
    template: file('sigmoid_topk'),
    context: ({ router: r, correctionBias }) => ({ renormalize: boolParam(r, 'renormalize'), scale: f32Literal(numParam(r, 'scale')), correctionBias, grouped: numParam(r, 'groups') > 1 }),
  },
  topk_softmax: { template: file('topk_softmax'), context: ({ bias }) => ({ bias }) },
  sparsemixer: {
    template: file('sparsemixer'),
    context: ({ router: r, topK }) => {
      if (topK !== 2) throw new Error(`sparsemixer routes exactly 2 experts per token, not top_k = ${topK}`);
      return { window: f32Literal(2 * numParam(r, 'jitter_eps')) };
    },
  },
  relu_gate: { template: file('relu_gate'), context: () => ({}) },
};

export function renderPartial(partial: RouterKernelPartial, shape: RouterKernelShape): string {
  const context = partial.context(shape);
  if ('file' in partial.template) return renderTemplate(partial.template.file, context);
  const { origin, source } = partial.template;
  // Bracketed so a shader compile error inside names the plugin's file (runtime/device.ts).
  return `${PASTED_WGSL_BEGIN}${origin}\n${renderTemplateSource(origin, source, context)}\n${PASTED_WGSL_END}${origin}`;
}
