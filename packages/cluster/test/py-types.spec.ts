import { describe, expect, it } from 'vitest';
import { renderDts, tsType, type PyModuleDescription } from '../src/cli/py-types.js';
import { runCli } from '../src/cli/main.js';

describe('tsray gen-types: Python types as TypeScript', () => {
  it('maps the cross-language values (docs/xlang.md) and names what it imports', () => {
    const used = new Set<string>();
    expect(
      tsType(
        {
          k: 'union',
          of: [
            { k: 'prim', t: 'string' },
            { k: 'prim', t: 'null' },
          ],
        },
        used,
      ),
    ).toBe('string | null');
    expect(
      tsType(
        {
          k: 'list',
          of: {
            k: 'union',
            of: [
              { k: 'prim', t: 'number' },
              { k: 'prim', t: 'string' },
            ],
          },
        },
        used,
      ),
    ).toBe('(number | string)[]');
    expect(tsType({ k: 'dict', of: { k: 'prim', t: 'bytes' } }, used)).toBe('Record<string, Buffer>');
    expect(tsType({ k: 'tuple', items: [{ k: 'prim', t: 'number' }, { k: 'any' }] }, used)).toBe('[number, any]');
    expect(tsType({ k: 'literal', values: ['a', 1] }, used)).toBe('"a" | 1');
    expect(used.size).toBe(0);
    expect(tsType({ k: 'ndarray', dtype: 'float32' }, used)).toBe('Float32Array | NDArray');
    expect(tsType({ k: 'objectref' }, used)).toBe('ObjectRef<unknown>');
    expect([...used].sort()).toEqual(['NDArray', 'ObjectRef']);
  });

  it('writes an interface per actor class (async methods -> Promise), a type per function and per dataclass', () => {
    const d: PyModuleDescription = {
      module: 'pkg.m',
      interfaces: [{ name: 'Point', doc: '', fields: [{ name: 'x', type: { k: 'prim', t: 'number' }, optional: false }] }],
      classes: [
        {
          name: 'Model',
          doc: 'Doc.',
          methods: [
            {
              name: 'fit',
              doc: '',
              params: [{ name: 'p', type: { k: 'ref', name: 'Point' }, optional: true, rest: false }],
              returns: { k: 'prim', t: 'null' },
              async: true,
              generator: false,
            },
          ],
        },
      ],
      functions: [
        {
          name: 'add',
          doc: '',
          params: [{ name: 'xs', type: { k: 'prim', t: 'number' }, optional: false, rest: true }],
          returns: { k: 'prim', t: 'number' },
          async: false,
          generator: false,
        },
      ],
    };
    const text = renderDts(d, 'tsray gen-types pkg.m');
    expect(text).toContain('export interface Point {\n  x: number;\n}');
    expect(text).toContain("Actor class: `python.actor<Model>('pkg.m:Model')`.");
    expect(text).toContain('  fit(p?: Point): Promise<null>;');
    expect(text).toContain('export type add = (...xs: number[]) => number;');
    expect(text).not.toContain('import type');
  });

  it('refuses a bad module name before starting Python', async () => {
    const err: string[] = [];
    const code = await runCli(['gen-types', 'not-a-module!'], { out: () => {}, err: (t) => void err.push(t) });
    expect(code).toBe(2);
    expect(err.join('')).toContain('expected a dotted Python module name');
  });
});
