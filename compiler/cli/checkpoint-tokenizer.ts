// A checkpoint directory's tokenizer for `--prompt`: tokenizer.json, and when present
// tokenizer_config.json (chat template, eos), generation_config.json (eos) and chat_template.jinja.
// A file missing, malformed or without what is asked of it is an error naming it.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError } from '../../runtime/node/checkpoint-dir.js';
import type { TextTokenizer } from '../../runtime/text.js';

export async function loadCheckpointTokenizer(dir: string): Promise<TextTokenizer> {
  const { loadTextTokenizer, TokenizerError } = await import('../../runtime/text.js'); // loaded only when text goes in
  const path = (file: string) => join(dir, file);
  const read = (file: string, required: boolean): string | undefined => {
    if (!required && !existsSync(path(file))) return undefined;
    try {
      return readFileSync(path(file), 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new CheckpointError(code === 'ENOENT'
        ? `${path(file)}: not found; --prompt needs the checkpoint's tokenizer (tokenizer.json, as Hugging Face saves it), or pass ids with --prompt-ids`
        : `${path(file)}: cannot read (${code ?? (e as Error).message})`);
    }
  };
  const json = (file: string, required: boolean): unknown => {
    const text = read(file, required);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new CheckpointError(`${path(file)}: not valid JSON (${(e as Error).message})`);
    }
  };
  try {
    return loadTextTokenizer({
      tokenizerJson: json('tokenizer.json', true), tokenizerConfig: json('tokenizer_config.json', false),
      generationConfig: json('generation_config.json', false), chatTemplate: read('chat_template.jinja', false),
    });
  } catch (e) {
    if (e instanceof TokenizerError) throw new CheckpointError(`${path(e.file === 'chat_template' ? 'chat_template.jinja' : e.file)}: ${e.message}`);
    throw e;
  }
}

/** A TokenizerError thrown later (a chat template without what the messages need) as one naming its file. */
export async function tokenizerErrorInFile(dir: string, e: unknown): Promise<unknown> {
  const { TokenizerError } = await import('../../runtime/text.js');
  return e instanceof TokenizerError ? new CheckpointError(`${join(dir, e.file === 'chat_template' ? 'chat_template.jinja' : e.file)}: ${e.message}`) : e;
}
