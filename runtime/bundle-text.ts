// Text in and out of a bundle's model: the checkpoint's tokenizer (given to load(), or fetched next
// to a checkpoint URL on first use) turns a prompt or chat messages into ids, generation stops at
// its end-of-sequence ids, and the ids stream back as text. Browser-safe.
import { loadTextTokenizer, streamText, TokenizerError, type ChatMessage, type TextTokenizer, type TextTokenizerFiles } from './text.js';

/** A checkpoint URL's tokenizer files: tokenizer.json (required), and the others where the server has them. */
export async function fetchTokenizerFiles(base: string | URL, fetchImpl: typeof fetch = globalThis.fetch): Promise<TextTokenizerFiles> {
  const root = new URL(String(base).endsWith('/') ? String(base) : `${String(base)}/`, globalThis.location?.href);
  const get = async (file: string, required: boolean): Promise<string | undefined> => {
    const url = new URL(file, root);
    const response = await fetchImpl(url);
    if (response.ok) return response.text();
    if (!required && response.status === 404) return undefined;
    throw new TokenizerError('tokenizer.json', `${url}: HTTP ${response.status}${required ? ' (generateText needs the checkpoint\'s tokenizer.json)' : ''}`);
  };
  const json = (file: string, text: string | undefined): unknown => {
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new TokenizerError(file as 'tokenizer.json', `${new URL(file, root)}: not valid JSON (${(e as Error).message})`);
    }
  };
  const [tokenizerJson, tokenizerConfig, generationConfig, chatTemplate] = await Promise.all([
    get('tokenizer.json', true), get('tokenizer_config.json', false), get('generation_config.json', false), get('chat_template.jinja', false),
  ]);
  return {
    tokenizerJson: json('tokenizer.json', tokenizerJson),
    ...(tokenizerConfig === undefined ? {} : { tokenizerConfig: json('tokenizer_config.json', tokenizerConfig) }),
    ...(generationConfig === undefined ? {} : { generationConfig: json('generation_config.json', generationConfig) }),
    ...(chatTemplate === undefined ? {} : { chatTemplate }),
  };
}

/** The prompt's ids: text as it encodes, or chat messages through the chat template. */
export function encodePrompt(tokenizer: TextTokenizer, input: string | readonly ChatMessage[]): number[] {
  return typeof input === 'string' ? tokenizer.encode(input) : tokenizer.encodeChat(input);
}

export { loadTextTokenizer, streamText, type ChatMessage, type TextTokenizer, type TextTokenizerFiles };
