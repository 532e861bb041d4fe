// Text generation on a model session: the prompt in one call, then one call per new token, each
// sampled on the GPU (greedy, temperature, top-k, top-p with a seed) so only the 4-byte id of
// every token is read back. The same seed gives the same tokens wherever the kernels run.
import type { ModelExecutor } from './model-executor.js';
import { checkSamplingOptions, type SamplingOptions } from './sampling-options.js';

export interface GenerateOptions {
  maxTokens: number;
  /** 0 (default) = greedy. */
  temperature?: number;
  /** 0 (default) = off. */
  topK?: number;
  /** 1 (default) = off. */
  topP?: number;
  seed?: number;
  /** Generation stops after producing one of these ids (it is yielded). */
  stop?: readonly number[];
}

/** Starts a fresh session on `executor` and yields up to maxTokens generated ids. */
export async function* generateTokens(executor: ModelExecutor, prompt: ArrayLike<number>, options: GenerateOptions): AsyncGenerator<number> {
  const { maxTokens } = options;
  if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new RangeError(`maxTokens ${maxTokens} must be a non-negative integer`);
  if (prompt.length === 0) throw new RangeError('the prompt is empty: generation needs at least one token');
  const sampling = (step: number): SamplingOptions => ({ temperature: options.temperature ?? 0, topK: options.topK ?? 0, topP: options.topP ?? 1, seed: options.seed ?? 0, step });
  checkSamplingOptions(sampling(0));
  const { context } = executor.plan;
  if (prompt.length + maxTokens - 1 > context) throw new RangeError(`a prompt of ${prompt.length} tokens plus ${maxTokens} generated needs ${prompt.length + maxTokens - 1} positions; the model was compiled for a context of ${context} (compile { context = N })`);
  if (maxTokens === 0) return;
  executor.reset();
  const stop = new Set(options.stop ?? []);
  let next = await executor.next(prompt, sampling(0));
  for (let step = 0; ; step++) {
    yield next;
    if (stop.has(next) || step + 1 >= maxTokens) return;
    next = await executor.next([next], sampling(step + 1));
  }
}
