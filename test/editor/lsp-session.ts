// An editor's side of an LSP conversation with the .moe server: either the server running in
// this process over a pair of in-memory streams, or a spawned server process over stdio.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';
import {
  createConnection, createProtocolConnection, IPCMessageReader, IPCMessageWriter, StreamMessageReader, StreamMessageWriter,
  type CompletionItem, type CompletionList, type DocumentSymbol, type FoldingRange, type Hover, type Location,
  type Position, type ProtocolConnection, type PublishDiagnosticsParams, type Range, type TextEdit, type WorkspaceEdit,
} from 'vscode-languageserver/node';
import type { KindRegistry } from '../../compiler/spec/kinds/registry.js';
import { startMoeServer } from '../../editor/server/server.js';

export class LspSession {
  private readonly diagnosticWaiters = new Map<string, ((d: PublishDiagnosticsParams) => void)[]>();
  readonly published: PublishDiagnosticsParams[] = [];

  private constructor(readonly connection: ProtocolConnection, private readonly child?: ChildProcess) {
    connection.onNotification('textDocument/publishDiagnostics', (params: PublishDiagnosticsParams) => {
      this.published.push(params);
      const waiters = this.diagnosticWaiters.get(params.uri) ?? [];
      this.diagnosticWaiters.delete(params.uri);
      for (const resolve of waiters) resolve(params);
    });
    connection.listen();
  }

  /** The server of editor/server/server.ts, in this process. */
  static inMemory(registry?: KindRegistry): LspSession {
    const toServer = new PassThrough();
    const toClient = new PassThrough();
    const server = createConnection(new StreamMessageReader(toServer), new StreamMessageWriter(toClient));
    startMoeServer(server, registry ? { registry } : {});
    server.listen();
    return new LspSession(createProtocolConnection(new StreamMessageReader(toClient), new StreamMessageWriter(toServer)));
  }

  /** `node <script> --stdio`, as VS Code starts it. */
  static spawnStdio(script: string): LspSession {
    const child = spawn(process.execPath, [script, '--stdio'], { stdio: ['pipe', 'pipe', 'inherit'] });
    return new LspSession(createProtocolConnection(new StreamMessageReader(child.stdout!), new StreamMessageWriter(child.stdin!)), child);
  }

  /** `node <script> --node-ipc`, as the VS Code extension starts it (TransportKind.ipc). */
  static spawnIpc(script: string): LspSession {
    const child = fork(script, ['--node-ipc'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    return new LspSession(createProtocolConnection(new IPCMessageReader(child), new IPCMessageWriter(child)), child);
  }

  async initialize(): Promise<Record<string, unknown>> {
    const result = await this.connection.sendRequest('initialize', { processId: null, rootUri: null, capabilities: {} }) as { capabilities: Record<string, unknown> };
    await this.connection.sendNotification('initialized', {});
    return result.capabilities;
  }

  /** Opens a document and resolves with the first diagnostics published for it. */
  open(uri: string, text: string): Promise<PublishDiagnosticsParams> {
    const published = this.nextDiagnostics(uri);
    void this.connection.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'moe', version: 1, text } });
    return published;
  }

  change(uri: string, version: number, text: string): Promise<PublishDiagnosticsParams> {
    const published = this.nextDiagnostics(uri);
    void this.connection.sendNotification('textDocument/didChange', { textDocument: { uri, version }, contentChanges: [{ text }] });
    return published;
  }

  private nextDiagnostics(uri: string): Promise<PublishDiagnosticsParams> {
    return new Promise((resolve) => this.diagnosticWaiters.set(uri, [...(this.diagnosticWaiters.get(uri) ?? []), resolve]));
  }

  async completion(uri: string, position: Position): Promise<CompletionItem[]> {
    const result = await this.connection.sendRequest('textDocument/completion', { textDocument: { uri }, position }) as CompletionItem[] | CompletionList | null;
    return Array.isArray(result) ? result : result?.items ?? [];
  }

  hover(uri: string, position: Position): Promise<Hover | null> {
    return this.connection.sendRequest('textDocument/hover', { textDocument: { uri }, position });
  }

  formatting(uri: string): Promise<TextEdit[] | null> {
    return this.connection.sendRequest('textDocument/formatting', { textDocument: { uri }, options: { tabSize: 2, insertSpaces: true } });
  }

  documentSymbols(uri: string): Promise<DocumentSymbol[] | null> {
    return this.connection.sendRequest('textDocument/documentSymbol', { textDocument: { uri } });
  }

  foldingRanges(uri: string): Promise<FoldingRange[] | null> {
    return this.connection.sendRequest('textDocument/foldingRange', { textDocument: { uri } });
  }

  definition(uri: string, position: Position): Promise<Location | Location[] | null> {
    return this.connection.sendRequest('textDocument/definition', { textDocument: { uri }, position });
  }

  prepareRename(uri: string, position: Position): Promise<{ range: Range; placeholder: string } | null> {
    return this.connection.sendRequest('textDocument/prepareRename', { textDocument: { uri }, position });
  }

  rename(uri: string, position: Position, newName: string): Promise<WorkspaceEdit | null> {
    return this.connection.sendRequest('textDocument/rename', { textDocument: { uri }, position, newName });
  }

  /** shutdown + exit for a spawned server (exit ends the process); just disposes an in-memory one. */
  async close(): Promise<number | null> {
    if (!this.child) {
      this.connection.dispose();
      return null;
    }
    const exited = new Promise<number | null>((resolve) => this.child!.once('exit', (code) => resolve(code)));
    await this.connection.sendRequest('shutdown');
    await this.connection.sendNotification('exit');
    const code = await exited;
    this.connection.dispose();
    return code;
  }
}

export function fileUri(path: string): string {
  return pathToFileURL(path).href;
}

/** The position of the `nth` occurrence of `needle` in `text`, plus `delta` characters. */
export function positionOf(text: string, needle: string, delta = 0, nth = 0): Position {
  let index = -1;
  for (let i = 0; i <= nth; i++) {
    index = text.indexOf(needle, index + 1);
    if (index < 0) throw new Error(`${JSON.stringify(needle)} (#${nth}) not found`);
  }
  return positionAtOffset(text, index + delta);
}

export function positionAtOffset(text: string, offset: number): Position {
  const before = text.slice(0, offset).split('\n');
  return { line: before.length - 1, character: before[before.length - 1]!.length };
}

/** A text with a `|` cursor marker: the text without it and the cursor's position. */
export function withCursor(marked: string): { text: string; position: Position } {
  const at = marked.indexOf('|');
  const text = marked.slice(0, at) + marked.slice(at + 1);
  return { text, position: positionAtOffset(text, at) };
}

