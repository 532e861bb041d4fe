// The language server: wires the feature functions of this folder to an LSP connection.
// No language logic lives here; each handler reads the document's text and calls one function.
import { fileURLToPath } from 'node:url';
import {
  LSPErrorCodes, ResponseError, TextDocuments, TextDocumentSyncKind, type Connection, type InitializeResult,
} from 'vscode-languageserver';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { defaultRegistry } from '../../compiler/spec/kinds/builtin.js';
import type { KindRegistry } from '../../compiler/spec/kinds/registry.js';
import { completionsAt } from './completion.js';
import { definitionAt, prepareRenameAt, renameAt } from './definition-rename.js';
import { specDiagnostics, toLspDiagnostic } from './diagnostics.js';
import { kindsForSpec } from './plugins.js';
import { LineMap } from './text-positions.js';
import { foldingRanges } from './folding.js';
import { formatDocument } from './formatting.js';
import { hoverAt } from './hover.js';
import { documentSymbols } from './symbols.js';

export interface MoeServerOptions {
  /** The kinds the language knows; a plugin-extended registry makes its kinds complete and check. */
  registry?: KindRegistry;
}

export const serverCapabilities: InitializeResult['capabilities'] = {
  textDocumentSync: TextDocumentSyncKind.Incremental,
  completionProvider: { triggerCharacters: ['=', '(', ','] },
  hoverProvider: true,
  definitionProvider: true,
  renameProvider: { prepareProvider: true },
  documentFormattingProvider: true,
  documentSymbolProvider: true,
  foldingRangeProvider: true,
};

/** The file name the compiler's diagnostics carry (they are not shown; the range is). */
function fileOf(uri: string): string {
  return uri.startsWith('file:') ? fileURLToPath(uri) : uri;
}

export function startMoeServer(connection: Connection, options: MoeServerOptions = {}): void {
  const registry = options.registry ?? defaultRegistry;
  const documents = new TextDocuments(TextDocument);
  const withText = <T>(params: { textDocument: { uri: string } }, feature: (text: string, uri: string) => T | undefined): T | null => {
    const document = documents.get(params.textDocument.uri);
    return (document && feature(document.getText(), document.uri)) ?? null;
  };

  connection.onInitialize(() => ({ capabilities: serverCapabilities, serverInfo: { name: 'moec' } }));

  // Each spec's kinds: the server's plus those of the plugins its compile block names (loaded on change).
  const kindsOf = new Map<string, KindRegistry>();
  documents.onDidChangeContent(async ({ document }) => {
    const text = document.getText();
    const file = fileOf(document.uri);
    const { kinds, diagnostics: unloaded } = await kindsForSpec(text, file, registry);
    kindsOf.set(document.uri, kinds);
    const lines = new LineMap(text);
    const diagnostics = [...unloaded.map((d) => toLspDiagnostic(d, lines)), ...specDiagnostics(text, file, kinds)];
    void connection.sendDiagnostics({ uri: document.uri, version: document.version, diagnostics });
  });
  documents.onDidClose(({ document }) => {
    kindsOf.delete(document.uri);
    void connection.sendDiagnostics({ uri: document.uri, diagnostics: [] });
  });
  const kinds = (uri: string) => kindsOf.get(uri) ?? registry;

  connection.onCompletion((p) => withText(p, (text, uri) => completionsAt(text, p.position, kinds(uri))));
  connection.onHover((p) => withText(p, (text, uri) => hoverAt(text, p.position, kinds(uri), fileOf(uri))));
  connection.onDefinition((p) => withText(p, (text, uri) => {
    const range = definitionAt(text, p.position);
    return range && { uri, range };
  }));
  connection.onPrepareRename((p) => withText(p, (text) => prepareRenameAt(text, p.position)));
  connection.onRenameRequest((p) => withText(p, (text, uri) => {
    const result = renameAt(text, p.position, p.newName);
    if (result && 'error' in result) return new ResponseError(LSPErrorCodes.RequestFailed, result.error);
    return result && { changes: { [uri]: result.edits } };
  }));
  connection.onDocumentFormatting((p) => withText(p, (text, uri) => formatDocument(text, fileOf(uri))));
  connection.onDocumentSymbol((p) => withText(p, documentSymbols));
  connection.onFoldingRanges((p) => withText(p, foldingRanges));

  documents.listen(connection);
}
