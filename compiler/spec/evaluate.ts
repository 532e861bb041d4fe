// Evaluates field and argument expressions against their schema type: constant integer
// arithmetic, booleans, enum names, lists, and kind calls resolved through the registry.
import type { KindRef, ParamValue } from '../../ir/model-config.js';
import type { Arg, Expr, Span } from './ast.js';
import { diagnostic, type Diagnostic } from './diagnostics.js';
import { didYouMean } from './did-you-mean.js';
import { categoryWords, type FieldSchema, type KindCategory, type KindContext, type KindRegistry, type ValueType } from './kinds/registry.js';

export interface EvalContext {
  file: string;
  registry: KindRegistry;
  diagnostics: Diagnostic[];
  kindContext: KindContext;
}

function fail(ctx: EvalContext, span: Span, message: string, hint?: string): undefined {
  ctx.diagnostics.push(diagnostic(ctx.file, span, message, hint));
  return undefined;
}

function describeRange(v: { min?: number; max?: number }): string {
  if (v.min !== undefined && v.max !== undefined) return `allowed range: ${v.min}..${v.max}`;
  if (v.min !== undefined) return `allowed range: ${v.min} or more`;
  return v.max !== undefined ? `allowed range: up to ${v.max}` : '';
}

/** Constant arithmetic; integer division must be exact so sizes stay integers. */
export function evalNumber(expr: Expr, ctx: EvalContext): number | undefined {
  switch (expr.kind) {
    case 'number':
      return Number.isFinite(expr.value) ? expr.value : fail(ctx, expr.span, `number ${expr.text} is too large`);
    case 'paren':
      return evalNumber(expr.inner, ctx);
    case 'negate': {
      const v = evalNumber(expr.operand, ctx);
      return v === undefined ? undefined : -v;
    }
    case 'binary': {
      const a = evalNumber(expr.left, ctx);
      const b = evalNumber(expr.right, ctx);
      if (a === undefined || b === undefined) return undefined;
      if (expr.op === '/' && b === 0) return fail(ctx, expr.right.span, 'division by zero');
      const v = expr.op === '/' ? a / b : expr.op === '+' ? a + b : expr.op === '-' ? a - b : a * b;
      return Number.isFinite(v) ? v : fail(ctx, expr.span, 'the result is too large');
    }
    default:
      return fail(ctx, expr.span, `expected a number, found ${describeExpr(expr)}`);
  }
}

export function describeExpr(expr: Expr): string {
  switch (expr.kind) {
    case 'ident': return `the name \`${expr.name}\``;
    case 'call': return `a call to \`${expr.callee}\``;
    case 'string': return 'a string';
    case 'list': return 'a list';
    default: return 'a number';
  }
}

function inRange(value: number, type: { min?: number; max?: number; exclusiveMin?: boolean }): boolean {
  if (type.min !== undefined && (type.exclusiveMin ? value <= type.min : value < type.min)) return false;
  return type.max === undefined || value <= type.max;
}

export function evalValue(expr: Expr, type: ValueType, ctx: EvalContext, what: string): ParamValue | KindRef | undefined {
  switch (type.type) {
    case 'int':
    case 'number': {
      const v = evalNumber(expr, ctx);
      if (v === undefined) return undefined;
      if (type.type === 'int' && !Number.isInteger(v)) return fail(ctx, expr.span, `${what} must be a whole number, got ${v}`);
      // Past 2^53 whole numbers are no longer exact, so sizes and divisibility checks would lie.
      if (type.type === 'int' && !Number.isSafeInteger(v)) return fail(ctx, expr.span, `${what} = ${v} is too large`, `whole numbers go up to ${Number.MAX_SAFE_INTEGER}`);
      if (!inRange(v, type)) {
        const range = type.type === 'number' && type.exclusiveMin ? `must be greater than ${type.min}` : describeRange(type);
        return fail(ctx, expr.span, `${what} = ${v} is out of range`, range);
      }
      return v;
    }
    case 'bool':
      if (expr.kind === 'ident' && (expr.name === 'true' || expr.name === 'false')) return expr.name === 'true';
      return fail(ctx, expr.span, `${what} must be true or false, found ${describeExpr(expr)}`);
    case 'string':
      return expr.kind === 'string' ? expr.value : fail(ctx, expr.span, `${what} must be a string in double quotes`);
    case 'enum':
      if (expr.kind === 'ident' && type.values.includes(expr.name)) return expr.name;
      return fail(ctx, expr.span, expr.kind === 'ident' ? `unknown ${what} \`${expr.name}\`` : `${what} must be one of: ${type.values.join(', ')}`,
        expr.kind === 'ident' ? didYouMean(expr.name, type.values) : undefined);
    case 'int-list': {
      if (expr.kind !== 'list') return fail(ctx, expr.span, `${what} must be a list like [1, 2]`);
      const items = expr.items.map((item) => evalValue(item, { type: 'int', min: type.min }, ctx, `an element of ${what}`));
      return items.every((i) => typeof i === 'number') ? (items as number[]) : undefined;
    }
    case 'number-list': {
      if (expr.kind !== 'list') return fail(ctx, expr.span, `${what} must be a list like [1.0, 1.5]`);
      const items = expr.items.map((item) => evalValue(item, { type: 'number', min: type.min, exclusiveMin: type.exclusiveMin }, ctx, `an element of ${what}`));
      return items.every((i) => typeof i === 'number') ? (items as number[]) : undefined;
    }
    case 'string-list': {
      if (expr.kind !== 'list') return fail(ctx, expr.span, `${what} must be a list like ["./plugin.js"]`);
      const items = expr.items.map((item) => evalValue(item, { type: 'string' }, ctx, `an element of ${what}`));
      return items.every((i) => typeof i === 'string') ? (items as string[]) : undefined;
    }
    case 'kind-list': {
      if (expr.kind !== 'list') return fail(ctx, expr.span, `${what} must be a list like [int2, int4(group = 64)]`);
      const items = expr.items.map((item) => evalKind(item, type.category, ctx, `an element of ${what}`));
      return items.every((i) => i !== undefined) ? (items as KindRef[]) : undefined;
    }
    case 'kind':
      return evalKind(expr, type.category, ctx, what);
  }
}

function evalKind(expr: Expr, category: KindCategory, ctx: EvalContext, what: string): KindRef | undefined {
  if (expr.kind !== 'ident' && expr.kind !== 'call') {
    return fail(ctx, expr.span, `${what} must name a ${categoryWords[category]} kind, like \`${ctx.registry.list(category)[0]?.name ?? 'name'}(...)\``);
  }
  const name = expr.kind === 'ident' ? expr.name : expr.callee;
  const nameSpan = expr.kind === 'ident' ? expr.span : expr.calleeSpan;
  const definition = ctx.registry.get(category, name);
  if (!definition) {
    return fail(ctx, nameSpan, `unknown ${categoryWords[category]} kind \`${name}\``, didYouMean(name, ctx.registry.list(category).map((k) => k.name)));
  }
  const args: Arg[] = expr.kind === 'call' ? expr.args : [];
  const params = evalParams(definition.params, args, expr.span, ctx, name);
  if (!params) return undefined;
  const argSpans = new Map(args.filter((a) => a.name).map((a) => [a.name!, a.span]));
  const issues = definition.resolve?.(params, ctx.kindContext) ?? [];
  for (const issue of issues) fail(ctx, (issue.param && argSpans.get(issue.param)) || expr.span, `${name}: ${issue.message}`, issue.hint);
  return issues.length === 0 ? { kind: name, params } : undefined;
}

/** Named arguments checked against a parameter list: unknown, duplicate, missing, typed. */
export function evalParams(schema: readonly FieldSchema[], args: readonly Arg[], callSpan: Span, ctx: EvalContext, owner: string): Record<string, ParamValue> | undefined {
  const before = ctx.diagnostics.length;
  const params: Record<string, ParamValue> = {};
  const seen = new Map<string, Span>();
  for (const arg of args) {
    if (!arg.name || !arg.nameSpan) {
      const names = schema.map((p) => p.name);
      fail(ctx, arg.span, `arguments of \`${owner}\` are written by name`, names.length ? `write e.g. \`${names[0]} = ...\`; parameters: ${names.join(', ')}` : `\`${owner}\` takes no parameters`);
      continue;
    }
    const param = schema.find((p) => p.name === arg.name);
    if (!param) {
      const names = schema.map((p) => p.name);
      fail(ctx, arg.nameSpan, `\`${owner}\` has no parameter \`${arg.name}\``, names.length ? didYouMean(arg.name, names) : `\`${owner}\` takes no parameters`);
      continue;
    }
    const first = seen.get(arg.name);
    if (first) {
      fail(ctx, arg.nameSpan, `parameter \`${arg.name}\` is given twice`, `first given at line ${first.line}`);
      continue;
    }
    seen.set(arg.name, arg.nameSpan);
    const value = evalValue(arg.value, param.value, ctx, arg.name);
    if (value !== undefined) params[arg.name] = value as ParamValue;
  }
  for (const param of schema) {
    if (seen.has(param.name)) continue;
    if (param.required) fail(ctx, callSpan, `\`${owner}\` needs the parameter \`${param.name}\``, `${param.doc}`);
    else if (param.default !== undefined) params[param.name] = structuredClone(param.default);
  }
  return ctx.diagnostics.length === before ? params : undefined;
}
