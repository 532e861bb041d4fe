// model.js: one minified ES module holding the runtime, the model's plans and its WGSL, and the
// codec of each plugin weight format its plans use (the plugin's runtime module, handed to
// loadModel), so a bundle needs no plugin at run time. Built for the browser platform, so a Node
// built-in anywhere in the runtime or a codec fails the build; in Node the caller brings the GPU
// (`webgpu` package) instead.
import { build } from 'esbuild';
import type { BundleData } from '../../runtime/bundle.js';
import { runtimeFile } from './package-info.js';

/** What model.js exports from the runtime besides load/config (see model-dts.ts, which declares them). */
export const RUNTIME_EXPORTS = [
  'hfWeightsFromSafetensors', 'hfWeightsFromUrl', 'fetchHfCheckpoint', 'hfWeightSource', 'safetensorsReader',
  'parseSafetensors', 'readTensorF32', 'encodeSafetensors', 'SUPPORTED_MODEL_TYPES', 'ModelError',
] as const;

/** `formatModules`: files whose default export is a FormatDefinition (a plugin format's codec). */
export function modelEntrySource(data: BundleData, runtimeIndex: string, formatModules: readonly string[] = []): string {
  const from = JSON.stringify(runtimeIndex);
  const formats = formatModules.map((_, i) => `format${i}`);
  return [
    `import { loadModel } from ${from};`,
    ...formatModules.map((file, i) => `import ${formats[i]!} from ${JSON.stringify(file)};`),
    `const data = ${JSON.stringify(data)};`,
    'export const config = data.config;',
    'export const moeLayers = data.moeLayers;',
    'export const bundleInfo = { moecVersion: data.moecVersion, specSha256: data.specSha256 };',
    `export function load(options) { return loadModel(data, options${formats.length ? `, [${formats.join(', ')}]` : ''}); }`,
    `export { ${RUNTIME_EXPORTS.join(', ')} } from ${from};`,
    '',
  ].join('\n');
}

export async function emitModelJs(data: BundleData, formatModules: readonly string[] = []): Promise<string> {
  const runtimeIndex = runtimeFile('index');
  const result = await build({
    stdin: { contents: modelEntrySource(data, runtimeIndex, formatModules), loader: 'js', resolveDir: process.cwd(), sourcefile: 'model-entry.js' },
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    legalComments: 'none',
    logLevel: 'silent',
    banner: { js: `// ${data.config.name}: compiled by moec ${data.moecVersion}. Load with \`load({ gpu, weights })\`; see README.md.` },
  });
  return result.outputFiles[0]!.text;
}
