// Build time only (scripts/build-dts.mjs): the spec-independent part of model.d.ts, load() and the
// runtime's public types copied from its sources with ts-morph, so they cannot drift from what
// model.js does. ts-morph loads a whole TypeScript (~1 s), so `moec compile` reads the result instead.
import { Project, StructureKind, VariableDeclarationKind, type SourceFile, type StatementStructures } from 'ts-morph';
import { runtimeSource } from './package-info.js';
import { hashInputs, type RuntimeApi } from './runtime-api.js';

/** Runtime declarations the API refers to, by runtime file; the first group are exported types, the rest helpers' types. */
const COPIED: Record<string, string[]> = {
  plan: ['WeightSource', 'RowRange'],
  device: ['AdapterSummary'],
  bundle: ['LoadOptions', 'HfSafetensorsWeights', 'Model', 'ModelError'],
  generate: ['GenerateOptions'],
  text: ['ChatMessage', 'TextTokenizerFiles'],
  'tensor-reader': ['TensorReader'],
  'hf-weights': ['HfWeightSource', 'HfWeightSourceOptions', 'hfWeightSource'],
  'hf-naming': ['SUPPORTED_MODEL_TYPES'],
  'hf-checkpoint': ['SafetensorsBytes', 'FetchedCheckpoint', 'FetchCheckpointOptions', 'hfWeightsFromSafetensors', 'hfWeightsFromUrl', 'fetchHfCheckpoint', 'safetensorsReader'],
  'http-ranges': ['HttpRangeOptions', 'TransferCount'],
  'http-tensor-reader': ['HttpTensorReader'],
  'packed/packed-weights': ['PackedFiles'],
  'tuning/tune-store': ['TuneStore', 'Warn', 'StoredLoadTuning', 'LoadTuningOutcome', 'TimedCandidate', 'DiscardedCandidate'],
  'tuning/first-load': ['LoadTuningReport'],
  'tuning/load-candidates': ['CandidateParams', 'TileParams'],
  'tuning/adapter-identity': ['AdapterIdentity', 'KernelLimits'],
  safetensors: ['SafetensorsDtype', 'TensorInfo', 'SafetensorsHeader', 'SafetensorsFile', 'parseSafetensors'],
  'safetensors-read': ['readTensorF32'],
  'safetensors-encode': ['TensorToEncode', 'encodeSafetensors'],
};

/** The declaration of `name` in `file` as a structure with no bodies or initializers. */
function declarationOf(file: SourceFile, name: string): StatementStructures {
  const iface = file.getInterface(name);
  if (iface) return iface.getStructure();
  const alias = file.getTypeAlias(name);
  if (alias) {
    const s = alias.getStructure();
    return { ...s, type: alias.getTypeNodeOrThrow().getText().replace(/^\|\s*/, '').replace(/\s*\n\s*/g, ' ') };
  }
  const fn = file.getFunction(name);
  if (fn) {
    const s = fn.getStructure();
    if (s.kind !== StructureKind.Function) throw new Error(`model.d.ts: ${name} has overloads`);
    return {
      ...s,
      isAsync: false,
      hasDeclareKeyword: true,
      statements: undefined,
      parameters: fn.getParameters().map((p) => ({
        ...p.getStructure(),
        type: p.getTypeNode()?.getText() ?? p.getType().getText(p),
        hasQuestionToken: p.hasQuestionToken() || p.hasInitializer(),
        initializer: undefined,
      })),
      returnType: fn.getReturnTypeNode()?.getText() ?? fn.getReturnType().getText(fn),
    };
  }
  const cls = file.getClass(name);
  if (cls) {
    // An error class: its heritage and property types, no bodies or initializers.
    return {
      kind: StructureKind.Class,
      name,
      hasDeclareKeyword: true,
      docs: cls.getJsDocs().map((d) => d.getStructure()),
      ...(cls.getExtends() ? { extends: cls.getExtends()!.getText() } : {}),
      properties: cls.getProperties().map((p) => ({ name: p.getName(), isReadonly: p.isReadonly(), type: p.getTypeNode()?.getText() ?? p.getType().getText(p) })),
    };
  }
  const variable = file.getVariableDeclaration(name);
  if (variable) {
    return {
      kind: StructureKind.VariableStatement,
      isExported: true,
      hasDeclareKeyword: true,
      declarationKind: VariableDeclarationKind.Const,
      docs: variable.getVariableStatement()?.getJsDocs().map((d) => d.getStructure()) ?? [],
      declarations: [{ name, type: variable.getTypeNode()?.getText() ?? variable.getType().getText(variable) }],
    };
  }
  throw new Error(`model.d.ts: runtime/${file.getBaseName()} declares no ${name}`);
}

/** load() and the copied runtime declarations, formatted as model.d.ts ends. */
export function emitRuntimeApi(): RuntimeApi {
  const runtime = new Project({ skipAddingFilesFromTsConfig: true, skipFileDependencyResolution: true });
  const out = new Project({ useInMemoryFileSystem: true }).createSourceFile('model.d.ts');
  out.addFunction({ name: 'load', isExported: true, hasDeclareKeyword: true, parameters: [{ name: 'options', type: 'LoadOptions' }],
    returnType: 'Promise<Model<MoeLayer>>',
    docs: ['Opens a WebGPU device (options.gpu, or navigator.gpu), checks the checkpoint against the whole model\'s weights, and returns the model; ' +
      'the decoder reads its weights on the first forward() or generate() (or prepare()), each MoE layer on its first run.'] });

  const declared = ['load'];
  const sources: string[] = [];
  for (const [name, names] of Object.entries(COPIED)) {
    const path = runtimeSource(name);
    sources.push(path);
    const file = runtime.addSourceFileAtPath(path);
    for (const n of names) {
      out.addStatements([{ ...declarationOf(file, n), isExported: true } as StatementStructures]);
      declared.push(n);
    }
  }
  out.formatText({ indentSize: 2, convertTabsToSpaces: true });
  return { inputs: hashInputs(sources), declared, text: out.getFullText() };
}
