// Text in and out of a model: a Hugging Face tokenizer (tokenizer.json + tokenizer_config.json,
// run by @huggingface/tokenizers), its chat template (Jinja, run by @huggingface/jinja) and the
// end-of-sequence ids, plus a detokenizer that streams text as ids arrive. Browser-safe: it takes
// the files' parsed JSON, the caller reads them.
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';

/** The file a problem comes from, by its usual name in a checkpoint directory. */
export type TokenizerFile = 'tokenizer.json' | 'tokenizer_config.json' | 'generation_config.json' | 'chat_template';

export class TokenizerError extends Error {
  override readonly name = 'TokenizerError';
  constructor(readonly file: TokenizerFile, message: string) {
    super(message);
  }
}

export interface ChatMessage {
  role: string;
  content: string;
}

export interface TextTokenizerFiles {
  /** tokenizer.json, parsed. */
  tokenizerJson: unknown;
  /** tokenizer_config.json, parsed: special tokens, chat_template, decoding options. */
  tokenizerConfig?: unknown;
  /** generation_config.json, parsed: its eos_token_id joins the tokenizer's. */
  generationConfig?: unknown;
  /** A chat_template.jinja file's text (newer checkpoints keep it out of tokenizer_config.json); wins over chat_template. */
  chatTemplate?: string;
}

export interface TextTokenizer {
  /** The ids of `text`, with the tokenizer's special tokens (e.g. a leading <s>) unless addSpecialTokens is false. */
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], options?: { skipSpecial?: boolean }): string;
  /** The chat template rendered for `messages`, ending with the prompt for the assistant's turn. */
  applyChatTemplate(messages: readonly ChatMessage[]): string;
  /** applyChatTemplate encoded as transformers does: the template writes the special tokens itself. */
  encodeChat(messages: readonly ChatMessage[]): number[];
  /** Generation stops at any of these (tokenizer_config's eos_token, generation_config's eos_token_id). */
  readonly eosIds: readonly number[];
  /** One past the largest id the tokenizer can produce. */
  readonly vocabSize: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A special token as tokenizer_config.json writes it: a string, or an AddedToken object with `content`. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (isObject(value) && typeof value['content'] === 'string') return value['content'];
  return undefined;
}

/** tokenizer_config.json's chat_template: one string, or a list of named ones (the "default" one is used). */
function chatTemplateOf(config: Record<string, unknown>): string | undefined {
  const template = config['chat_template'];
  if (typeof template === 'string') return template;
  if (Array.isArray(template)) {
    const found = template.find((t) => isObject(t) && t['name'] === 'default');
    if (isObject(found) && typeof found['template'] === 'string') return found['template'];
    const names = template.map((t) => (isObject(t) ? String(t['name']) : '?')).join(', ');
    throw new TokenizerError('tokenizer_config.json', `chat_template lists templates named ${names || 'nothing'}, none named "default"`);
  }
  if (template !== undefined && template !== null) throw new TokenizerError('tokenizer_config.json', `chat_template must be a string or a list of {name, template}, got ${typeof template}`);
  return undefined;
}

function eosIdsOf(tokenizer: Tokenizer, config: Record<string, unknown>, generationConfig: unknown): number[] {
  const ids = new Set<number>();
  const eos = tokenText(config['eos_token']);
  if (eos !== undefined) {
    const id = tokenizer.token_to_id(eos);
    if (id === undefined) throw new TokenizerError('tokenizer_config.json', `eos_token "${eos}" is not in the tokenizer's vocabulary`);
    ids.add(id);
  }
  if (generationConfig !== undefined) {
    if (!isObject(generationConfig)) throw new TokenizerError('generation_config.json', 'must be a JSON object');
    const given = generationConfig['eos_token_id'];
    const list = given === undefined || given === null ? [] : Array.isArray(given) ? given : [given];
    for (const id of list) {
      if (!Number.isInteger(id) || (id as number) < 0) throw new TokenizerError('generation_config.json', `eos_token_id must be an id or a list of ids, got ${JSON.stringify(given)}`);
      ids.add(id as number);
    }
  }
  return [...ids];
}

/** A tokenizer from a checkpoint's parsed tokenizer files; throws TokenizerError naming the file at fault. */
export function loadTextTokenizer(files: TextTokenizerFiles): TextTokenizer {
  if (!isObject(files.tokenizerJson)) throw new TokenizerError('tokenizer.json', 'must be a JSON object');
  if (files.tokenizerConfig !== undefined && !isObject(files.tokenizerConfig)) throw new TokenizerError('tokenizer_config.json', 'must be a JSON object');
  const config = (files.tokenizerConfig ?? {}) as Record<string, unknown>;
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(files.tokenizerJson, config);
  } catch (e) {
    throw new TokenizerError('tokenizer.json', `not a tokenizer @huggingface/tokenizers can load: ${(e as Error).message}`);
  }
  const eosIds = eosIdsOf(tokenizer, config, files.generationConfig);
  let vocabSize = 0;
  for (const id of tokenizer.get_vocab(true).values()) vocabSize = Math.max(vocabSize, id + 1); // a spread would overflow the stack at 150k ids
  // Everything transformers passes a chat template besides the messages: bos_token, eos_token, ...
  const specialTokens = Object.fromEntries(['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token']
    .map((key) => [key, tokenText(config[key])]).filter(([, v]) => v !== undefined));

  let template: Template | undefined;
  const chatTemplate = (): Template => {
    if (template) return template;
    const [source, file]: [string | undefined, TokenizerFile] = files.chatTemplate !== undefined
      ? [files.chatTemplate, 'chat_template'] : [chatTemplateOf(config), 'tokenizer_config.json'];
    if (source === undefined) {
      throw new TokenizerError('tokenizer_config.json', 'has no chat_template (nor is there a chat_template.jinja): this tokenizer has no chat format');
    }
    try {
      return (template = new Template(source));
    } catch (e) {
      throw new TokenizerError(file, `the chat template does not parse: ${(e as Error).message}`);
    }
  };
  const applyChatTemplate = (messages: readonly ChatMessage[]): string => {
    const compiled = chatTemplate();
    try {
      return compiled.render({ ...specialTokens, messages: messages.map((m) => ({ ...m })), add_generation_prompt: true });
    } catch (e) {
      throw new TokenizerError(files.chatTemplate !== undefined ? 'chat_template' : 'tokenizer_config.json', `the chat template failed: ${(e as Error).message}`);
    }
  };
  const encode = (text: string, options: { addSpecialTokens?: boolean } = {}): number[] =>
    tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  return {
    encode,
    // The library refuses an empty list; no ids are no text.
    decode: (ids, options = {}) => (ids.length === 0 ? '' : tokenizer.decode([...ids], { skip_special_tokens: options.skipSpecial ?? false })),
    applyChatTemplate,
    encodeChat: (messages) => encode(applyChatTemplate(messages), { addSpecialTokens: false }),
    eosIds,
    vocabSize,
  };
}

/**
 * Text pieces as `ids` arrive: decodes the growing sequence and yields what it adds, holding back
 * while the text ends in an incomplete character (a byte token's U+FFFD) or does not extend what
 * was yielded (a decoder that rewrites earlier text); the pieces join to decode(all ids) whenever
 * that text extends every earlier one. Decoding everything each time costs O(n^2) for n ids, which
 * is nothing next to a forward pass at the lengths generated here.
 */
export async function* streamText(tokenizer: Pick<TextTokenizer, 'decode'>, ids: AsyncIterable<number>, options: { skipSpecial?: boolean } = {}): AsyncGenerator<string> {
  const seen: number[] = [];
  let emitted = '';
  const extend = (text: string, final: boolean): string | undefined => {
    if ((!final && text.endsWith('\uFFFD')) || !text.startsWith(emitted) || text.length === emitted.length) return undefined;
    const piece = text.slice(emitted.length);
    emitted = text;
    return piece;
  };
  for await (const id of ids) {
    seen.push(id);
    const piece = extend(tokenizer.decode(seen, options), false);
    if (piece !== undefined) yield piece;
  }
  const rest = extend(tokenizer.decode(seen, options), true); // a character the ids never finished shows as U+FFFD
  if (rest !== undefined) yield rest;
}
