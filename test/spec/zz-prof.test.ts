import { it } from 'vitest';
import { checkSpec } from '../../compiler/spec/check.js';
import { formatSpec } from '../../compiler/spec/format.js';
it('prof', () => {
  const field = (value: string) => `model "m" {\n  hidden = ${value}\n}\n`;
  const inputs: [string,string][] = [];
  for (const depth of [2000, 20_000]) {
    inputs.push(['paren'+depth, field('('.repeat(depth) + '1' + ')'.repeat(depth))], ['unclosed'+depth, field('('.repeat(depth))], ['blocks'+depth, 'model "m" {' + ' x {'.repeat(depth) + '}'.repeat(depth) + '}'], ['lcurly'+depth, '{'.repeat(depth)], ['rcurly'+depth, '}'.repeat(depth)]);
    inputs.push(['chain'+depth, field(Array(depth).fill('1').join(' + '))], ['call'+depth, field(`f(${'a = f('.repeat(depth)}`)]);
  }
  inputs.push(['list', field(`[${Array(100_000).fill('1').join(', ')}]`)], ['nines', field('9'.repeat(100_000))], ['slashstar', '/*'.repeat(10_000)], ['quotes', '"'.repeat(10_000)], ['ats', '@'.repeat(100_000)]);
  inputs.push(['5000 models', Array(5000).fill('model "m" { hidden = 1 }').join('\n')], ['eqs', Array(20_000).fill('= ').join('')]);
  for (const [n, s] of inputs) { const t = performance.now(); const r = checkSpec(s, 'f'); const t2 = performance.now(); formatSpec(s, 'f'); console.log(n, (t2-t).toFixed(1), (performance.now()-t2).toFixed(1), r.diagnostics.length); }
});
