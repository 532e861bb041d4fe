// HF config.json -> .moe source: pick the family importer by model_type, print its spec, and check
// the printed text with the same front end as `moec check`, so an importer bug can never hand a
// user a spec that does not compile.
import { basename, dirname } from 'node:path';
import type { ModelConfig } from '../../ir/model-config.js';
import { checkSpec } from '../spec/check.js';
import { formatDiagnostic, hasErrors } from '../spec/diagnostics.js';
import { formatSpec } from '../spec/format.js';
import { ImportError, parseConfigJson } from './config-reader.js';
import type { FamilyImporter } from './decoder-fields.js';
import { importDeepseekV2, importDeepseekV3 } from './deepseek.js';
import { importGptOss } from './gpt-oss.js';
import { importMixtral, importPhiMoe } from './mixtral.js';
import { importOlmoe, importQwen2Moe, importQwen3Moe } from './qwen-moe.js';
import { block, printSpec, type SpecBlock } from './spec-writer.js';

export const familyImporters: Readonly<Record<string, FamilyImporter>> = {
  mixtral: importMixtral,
  phimoe: importPhiMoe,
  qwen2_moe: importQwen2Moe,
  qwen3_moe: importQwen3Moe,
  olmoe: importOlmoe,
  deepseek_v2: importDeepseekV2,
  deepseek_v3: importDeepseekV3,
  gpt_oss: importGptOss,
};

export interface ImportResult {
  modelType: string;
  /** The .moe text, already checked. */
  source: string;
  /** The checked spec's resolved model. */
  config: ModelConfig;
  /** Config features the spec could not express (also written as comments in `source`). */
  notes: string[];
}

/** `mixtral-8x7b.config.json` -> `mixtral-8x7b`; a plain `config.json` takes its folder's name. */
export function modelNameFromPath(file: string): string {
  const base = basename(file).replace(/\.json$/i, '').replace(/\.config$/i, '');
  return base === 'config' || base === '' ? basename(dirname(file)) || 'model' : base;
}

export function importHfConfig(text: string, file: string): ImportResult {
  const r = parseConfigJson(text, file);
  const modelType = r.string('model_type', 'choosing the model family');
  const importer = familyImporters[modelType];
  if (!importer) {
    throw new ImportError(`${file}: model_type ${JSON.stringify(modelType)} is not supported; supported: ${Object.keys(familyImporters).join(', ')}`);
  }
  const imported = importer(r);
  const name = modelNameFromPath(file);
  const header = [`Imported by \`moec import\` from ${basename(file)} (model_type "${modelType}").`, imported.summary];
  if (imported.notes.length) header.push('Not expressible in .moe (the compiled model will not do these):', ...imported.notes.map((n) => `- ${n}`));
  const blocks: SpecBlock[] = [block('model', imported.model, name)];
  if (imported.compile) blocks.push(block('compile', imported.compile));
  const printed = printSpec(header, blocks);

  const specFile = `${name}.moe`;
  const checked = checkSpec(printed, specFile);
  if (!checked.config || hasErrors(checked.diagnostics)) {
    // The printer passes the config's values through, so a failed check means values that do not fit together.
    const details = checked.diagnostics.map((d) => formatDiagnostic(d, printed)).join('\n');
    throw new ImportError(`${file}: the model this config describes is not valid (if the config is right, this is an importer bug):\n${details}`);
  }
  // The canonical layout of `moec fmt`, so imported specs need no reformatting.
  const source = formatSpec(printed, specFile).text!;
  return { modelType, source, config: checked.config, notes: imported.notes };
}
