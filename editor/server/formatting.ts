// Format document: `moec fmt`'s output as one full-document edit; none when the text has syntax
// errors (formatSpec refuses) or is formatted already.
import type { TextEdit } from 'vscode-languageserver';
import { formatSpec } from '../../compiler/spec/format.js';
import { LineMap } from './text-positions.js';

export function formatDocument(text: string, file = 'untitled.moe'): TextEdit[] {
  const formatted = formatSpec(text, file).text;
  if (formatted === undefined || formatted === text) return [];
  return [{ range: new LineMap(text).fullRange(), newText: formatted }];
}
