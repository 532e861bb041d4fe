// runtime/text.ts on the tiny fixture tokenizer: encode/decode round trips, the chat template as
// transformers renders and encodes it, eos ids, errors naming the file at fault, and the streaming
// detokenizer, which must never hand out half a multi-byte character.
import { describe, expect, it } from 'vitest';
import { loadTextTokenizer, streamText, TokenizerError, type TextTokenizer } from '../../runtime/text.js';
import { SPECIAL, TINY_VOCAB_SIZE, tinyTokenizerFiles } from '../fixtures/make-tokenizer.js';
import { seededRandom } from '../support/seeded-random.js';

const tiny = (options?: { chatTemplate?: boolean }): TextTokenizer => loadTextTokenizer(tinyTokenizerFiles(options));

async function* fromArray(ids: readonly number[]): AsyncGenerator<number> {
  yield* ids;
}

async function collect(pieces: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const piece of pieces) out.push(piece);
  return out;
}

function errorOf(f: () => unknown): TokenizerError {
  try {
    f();
  } catch (e) {
    if (e instanceof TokenizerError) return e;
    throw e;
  }
  throw new Error('expected a TokenizerError');
}

describe('loadTextTokenizer', () => {
  it('encodes with <s> in front and decodes back to the text', () => {
    const tokenizer = tiny();
    expect(tokenizer.vocabSize).toBe(TINY_VOCAB_SIZE);
    const sentence = tokenizer.encode('the cat sat on the mat.');
    expect(sentence[0]).toBe(SPECIAL.bos);
    expect(sentence).toHaveLength(8); // <s>, six merged words, '.'
    expect(tokenizer.encode('the cat', { addSpecialTokens: false })).toEqual(sentence.slice(1, 3));
    for (const text of ['the cat sat on the mat.', 'café, € 🙂!', 'two\nlines, is it?', 'zebra quiz']) {
      const ids = tokenizer.encode(text);
      expect(ids.slice(1).every((id) => id > SPECIAL.eos && id < TINY_VOCAB_SIZE), `${text}: ${ids}`).toBe(true);
      expect(tokenizer.decode(ids, { skipSpecial: true })).toBe(text);
      expect(tokenizer.decode(ids)).toBe(`<s> ${text}`); // as HF decodes Llama: the Strip decoder takes off a leading space only, and <s> leads
    }
    // Neither capitals nor digits are in the vocabulary, nor their bytes: one <unk> (fuse_unk).
    expect(tokenizer.encode('A5', { addSpecialTokens: false }).slice(1)).toEqual([SPECIAL.unk]);
    expect(tokenizer.decode([])).toBe('');
  });

  it('renders the chat template with the generation prompt and encodes it without adding <s> again', () => {
    const tokenizer = tiny();
    const messages = [{ role: 'system', content: 'be brief.' }, { role: 'user', content: 'is the cat on the mat?' }];
    const text = tokenizer.applyChatTemplate(messages);
    expect(text).toBe('<s><|system|>\nbe brief.</s>\n<|user|>\nis the cat on the mat?</s>\n<|assistant|>\n');
    const ids = tokenizer.encodeChat(messages);
    expect(ids).toEqual(tokenizer.encode(text, { addSpecialTokens: false }));
    expect(ids.filter((id) => id === SPECIAL.bos)).toHaveLength(1);
    expect(tokenizer.decode(ids)).toBe(text.replaceAll('\n', ' \n')); // Llama's legacy ▁ in front of each section after a special token
  });

  it('takes a chat_template.jinja over tokenizer_config.json, and says when there is none', () => {
    const files = tinyTokenizerFiles({ chatTemplate: false });
    const none = errorOf(() => loadTextTokenizer(files).applyChatTemplate([{ role: 'user', content: 'hi' }]));
    expect(none.file).toBe('tokenizer_config.json');
    expect(none.message).toMatch(/no chat_template/);
    const withFile = loadTextTokenizer({ ...files, chatTemplate: '{% for m in messages %}[{{ m.content }}]{% endfor %}{{ eos_token }}' });
    expect(withFile.applyChatTemplate([{ role: 'user', content: 'hi' }])).toBe('[hi]</s>');
    const broken = errorOf(() => loadTextTokenizer({ ...files, chatTemplate: '{% for m in messages %}' }).applyChatTemplate([]));
    expect(broken.file).toBe('chat_template');
  });

  it('stops at tokenizer_config\'s eos_token and generation_config\'s eos_token_id', () => {
    expect(tiny().eosIds).toEqual([SPECIAL.eos]);
    const files = tinyTokenizerFiles();
    expect(loadTextTokenizer({ ...files, generationConfig: { eos_token_id: [2, 5] } }).eosIds).toEqual([2, 5]);
    expect(loadTextTokenizer({ ...files, tokenizerConfig: { ...files.tokenizerConfig, eos_token: { content: '<|assistant|>' } } }).eosIds).toEqual([5]);
    expect(errorOf(() => loadTextTokenizer({ ...files, generationConfig: { eos_token_id: 'x' } })).file).toBe('generation_config.json');
    expect(errorOf(() => loadTextTokenizer({ ...files, tokenizerConfig: { eos_token: '<eot>' } })).message).toMatch(/eos_token "<eot>" is not in the tokenizer's vocabulary/);
  });

  it('names the file when tokenizer.json is not a tokenizer', () => {
    for (const tokenizerJson of [[], { model: { type: 'BPE' } }]) {
      const e = errorOf(() => loadTextTokenizer({ tokenizerJson }));
      expect(e.file).toBe('tokenizer.json');
    }
  });
});

describe('streamText', () => {
  const tokenizer = tiny();
  /** Single ids of whole words, and the byte-token spellings of 1- to 4-byte characters. */
  const word = (w: string) => tokenizer.encode(w, { addSpecialTokens: false });
  const units = [word('the'), word('cat'), word('sat'), word('on'), word('!'), word('é'), word('€'), word('🙂'), word('\n')];

  it('yields whole characters only, joining to the decoded text', async () => {
    expect(word('🙂').length).toBe(5); // ▁ and four bytes
    const seed = Math.floor(Math.random() * 2 ** 31);
    const random = seededRandom(seed);
    for (let trial = 0; trial < 50; trial++) {
      const ids = Array.from({ length: 1 + Math.floor(random() * 12) }, () => units[Math.floor(random() * units.length)]!).flat();
      const pieces = await collect(streamText(tokenizer, fromArray(ids), { skipSpecial: true }));
      expect(pieces.join(''), `seed ${seed}`).toBe(tokenizer.decode(ids, { skipSpecial: true }));
      for (const piece of pieces) {
        expect(piece, `seed ${seed}: ${JSON.stringify(pieces)}`).not.toMatch(/\uFFFD/);
        expect(piece.length, `seed ${seed}`).toBeGreaterThan(0);
      }
    }
  });

  it('holds a character back until its last byte, and shows one the ids never finish', async () => {
    const smile = word('🙂');
    const pieces = await collect(streamText(tokenizer, fromArray([...word('the'), ...smile, ...smile.slice(0, 3)])));
    expect(pieces).toEqual(['the', ' ', '🙂', ' ', '\uFFFD']);
    // A stray continuation byte stays U+FFFD in the text; the stream waits for what follows, then moves on.
    const stray = await collect(streamText(tokenizer, fromArray([smile[2]!, ...word('cat')])));
    expect(stray.join('')).toBe(tokenizer.decode([smile[2]!, ...word('cat')]));
  });
});
