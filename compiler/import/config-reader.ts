// Typed reads from a Hugging Face config.json. Every error names the file, the field and what
// the importer needed it for, so a user can fix the config (or report an unsupported model).

/** A problem with the config the user gave (not an importer bug): printed without a stack. */
export class ImportError extends Error {}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export function parseConfigJson(text: string, file: string): ConfigReader {
  let value: Json;
  try {
    value = JSON.parse(text) as Json;
  } catch (e) {
    throw new ImportError(`${file}: not valid JSON: ${(e as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ImportError(`${file}: not a config.json: the top level must be an object, got ${describe(value)}`);
  }
  return new ConfigReader(file, value);
}

function describe(value: Json | undefined): string {
  if (Array.isArray(value)) return 'a list';
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

interface IntOptions {
  /** Smallest allowed value (1 unless given). */
  min?: number;
  /** Used when the field is missing or null; without it the field is required. */
  default?: number;
}

export class ConfigReader {
  constructor(readonly file: string, private readonly fields: { [key: string]: Json }) {}

  /** Present and not null (HF writes null for "not set"). */
  has(field: string): boolean {
    return this.fields[field] !== undefined && this.fields[field] !== null;
  }

  /** The raw value, for notes about fields the importer does not map. */
  raw(field: string): unknown {
    return this.fields[field];
  }

  int(field: string, purpose: string, options: IntOptions = {}): number {
    const min = options.min ?? 1;
    const value = this.present(field, purpose, options.default);
    if (value === undefined) return options.default!;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
      throw this.wrongType(field, min === 1 ? 'a positive integer' : min === 0 ? 'a non-negative integer' : `an integer >= ${min}`, value);
    }
    return value;
  }

  number(field: string, purpose: string, options: { positive?: boolean; default?: number } = {}): number {
    const value = this.present(field, purpose, options.default);
    if (value === undefined) return options.default!;
    if (typeof value !== 'number' || !Number.isFinite(value) || (options.positive && value <= 0)) {
      throw this.wrongType(field, options.positive ? 'a positive number' : 'a number', value);
    }
    return value;
  }

  bool(field: string, purpose: string, fallback?: boolean): boolean {
    const value = this.present(field, purpose, fallback);
    if (value === undefined) return fallback!;
    if (typeof value !== 'boolean') throw this.wrongType(field, 'true or false', value);
    return value;
  }

  string(field: string, purpose: string, fallback?: string): string {
    const value = this.present(field, purpose, fallback);
    if (value === undefined) return fallback!;
    if (typeof value !== 'string') throw this.wrongType(field, 'a string', value);
    return value;
  }

  /** A string that must be one of `allowed` (e.g. topk_method). */
  oneOf<T extends string>(field: string, purpose: string, allowed: readonly T[], fallback?: T): T {
    const value = this.string(field, purpose, fallback);
    if (!(allowed as readonly string[]).includes(value)) {
      throw new ImportError(`${this.file}: field "${field}" is ${JSON.stringify(value)}, which the importer does not support; supported: ${allowed.map((a) => JSON.stringify(a)).join(', ')}`);
    }
    return value as T;
  }

  intList(field: string, purpose: string, fallback?: number[]): number[] {
    const value = this.present(field, purpose, fallback);
    if (value === undefined) return fallback!;
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'number' && Number.isInteger(v) && v >= 0)) {
      throw this.wrongType(field, 'a list of non-negative integers', value);
    }
    return value as number[];
  }

  numberList(field: string, purpose: string): number[] {
    const value = this.present(field, purpose, undefined);
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'number' && Number.isFinite(v) && v > 0)) throw this.wrongType(field, 'a list of positive numbers', value);
    return value as number[];
  }

  stringList(field: string, purpose: string, fallback?: string[]): string[] {
    const value = this.present(field, purpose, fallback);
    if (value === undefined) return fallback!;
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw this.wrongType(field, 'a list of strings', value);
    return value as string[];
  }

  /** An error about a field whose value is well-typed but not something the importer can map. */
  unsupported(field: string, message: string): ImportError {
    return new ImportError(`${this.file}: field "${field}" ${message}`);
  }

  /** The field's value, or undefined when it is absent/null and a fallback exists. */
  private present(field: string, purpose: string, fallback: unknown): Json | undefined {
    if (this.has(field)) return this.fields[field];
    if (fallback !== undefined) return undefined;
    const what = this.fields[field] === null ? 'is null' : 'is missing';
    throw new ImportError(`${this.file}: field "${field}" ${what} (needed for ${purpose})`);
  }

  private wrongType(field: string, expected: string, value: Json | undefined): ImportError {
    return new ImportError(`${this.file}: field "${field}" must be ${expected}, got ${describe(value)}`);
  }
}
