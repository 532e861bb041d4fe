// Splits the one function into the paths the runtime picks by token count: `decode` for up to
// the target's decodeMaxTokens tokens (GEMVs over the chosen experts), `prefill` above it
// (grouped GEMMs). Both start as copies; the lowering passes then make them differ.
import { pathOf, type Pass } from './pass.js';

export const splitPaths: Pass = {
  name: 'split-paths',
  description: 'One function per path: prefill (grouped GEMMs) and decode (GEMVs) for T <= the target bound.',
  run(module, { target }) {
    if (module.functions.length !== 1 || pathOf(module.functions[0]!) !== 'main') return module;
    const main = module.functions[0]!;
    const bound = target.decodeMaxTokens;
    return {
      ...module,
      functions: [
        { ...main, name: 'prefill', attrs: { ...main.attrs, path: 'prefill', min_tokens: bound + 1 } },
        { ...main, name: 'decode', attrs: { ...main.attrs, path: 'decode', max_tokens: bound } },
      ],
    };
  },
};

