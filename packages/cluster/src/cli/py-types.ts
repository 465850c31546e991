/**
 * TypeScript declarations from a Python module's description (`python/tsray/describe.py`): one
 * interface per actor class (for `python.actor<T>()`), one function type per function (for
 * `python.remote<Parameters<F>, ReturnType<F>>()`), one interface per dataclass / TypedDict. Types
 * follow the cross-language value mapping (docs/xlang.md): numbers, strings, `Buffer` for bytes,
 * typed arrays or `NDArray` for numpy arrays, `T | null` for Optional, `any` where nothing is known,
 * `Promise<T>` for `async def`.
 * @module
 */

/** A type as described by the Python side. */
export type PyType =
  | { k: 'any' }
  | { k: 'prim'; t: 'number' | 'string' | 'boolean' | 'null' | 'bytes' }
  | { k: 'list' | 'dict'; of: PyType }
  | { k: 'tuple'; items: PyType[] }
  | { k: 'union'; of: PyType[] }
  | { k: 'literal'; values: (string | number | boolean | null)[] }
  | { k: 'ndarray'; dtype: string | null }
  | { k: 'ref'; name: string }
  | { k: 'objectref' }
  | { k: 'handle' };

/** A function or method. */
export interface PySignature {
  name: string;
  doc: string;
  params: { name: string; type: PyType; optional: boolean; rest: boolean }[];
  returns: PyType;
  async: boolean;
  generator: boolean;
}

/** What `tsray.describe.describe()` returns. */
export interface PyModuleDescription {
  module: string;
  classes: { name: string; doc: string; methods: PySignature[] }[];
  functions: PySignature[];
  interfaces: { name: string; doc: string; fields: { name: string; type: PyType; optional: boolean }[] }[];
}

const TYPED_ARRAYS: Record<string, string> = {
  int8: 'Int8Array',
  uint8: 'Uint8Array',
  int16: 'Int16Array',
  uint16: 'Uint16Array',
  int32: 'Int32Array',
  uint32: 'Uint32Array',
  int64: 'BigInt64Array',
  uint64: 'BigUint64Array',
  float32: 'Float32Array',
  float64: 'Float64Array',
};
const ANY_TYPED_ARRAY = [...new Set(Object.values(TYPED_ARRAYS))].join(' | ');

/** The TypeScript type of a described Python type; `used` collects the @tsray/core names it needs. */
export function tsType(t: PyType, used: Set<string>): string {
  switch (t.k) {
    case 'prim':
      return t.t === 'bytes' ? 'Buffer' : t.t;
    case 'list': {
      const inner = tsType(t.of, used);
      return /[|&\s]/.test(inner) && !inner.startsWith('[') ? `(${inner})[]` : `${inner}[]`;
    }
    case 'dict':
      return `Record<string, ${tsType(t.of, used)}>`;
    case 'tuple':
      return `[${t.items.map((i) => tsType(i, used)).join(', ')}]`;
    case 'union':
      return [...new Set(t.of.map((u) => tsType(u, used)))].join(' | ');
    case 'literal':
      return t.values.length ? t.values.map((v) => JSON.stringify(v)).join(' | ') : 'never';
    case 'ndarray':
      // A 1-D array arrives as a typed array, an n-D one as NDArray (docs/xlang.md, ext 2).
      used.add('NDArray');
      return `${(t.dtype && TYPED_ARRAYS[t.dtype]) || ANY_TYPED_ARRAY} | NDArray`;
    case 'ref':
      return t.name;
    case 'objectref':
      used.add('ObjectRef');
      return 'ObjectRef<unknown>';
    case 'handle':
      used.add('ActorHandle');
      return 'ActorHandle<any>';
    default:
      return 'any';
  }
}

function docComment(doc: string, indent: string, extra?: string): string {
  const lines = [...(doc ? doc.split('\n') : []), ...(extra ? [extra] : [])];
  if (lines.length === 0) return '';
  return `${indent}/**\n${lines.map((l) => `${indent} *${l ? ` ${l.replaceAll('*/', '*\\/')}` : ''}`).join('\n')}\n${indent} */\n`;
}

function params(s: PySignature, used: Set<string>): string {
  return s.params
    .map((p) => {
      const t = tsType(p.type, used);
      if (p.rest) return `...${p.name}: ${/[|&\s]/.test(t) ? `(${t})` : t}[]`;
      return `${p.name}${p.optional ? '?' : ''}: ${t}`;
    })
    .join(', ');
}

function returns(s: PySignature, used: Set<string>): string {
  const r = tsType(s.returns, used);
  if (s.generator) return `${s.async ? 'AsyncGenerator' : 'Generator'}<${r}>`;
  return s.async ? `Promise<${r}>` : r;
}

/** The `.d.ts` text of a module description (`command` is named in the header). */
export function renderDts(d: PyModuleDescription, command: string): string {
  const used = new Set<string>();
  const body: string[] = [];
  for (const i of d.interfaces) {
    const fields = i.fields.map((f) => `  ${f.name}${f.optional ? '?' : ''}: ${tsType(f.type, used)};`).join('\n');
    body.push(`${docComment(i.doc, '')}export interface ${i.name} {\n${fields}${fields ? '\n' : ''}}\n`);
  }
  for (const c of d.classes) {
    const usage = `Actor class: \`python.actor<${c.name}>('${d.module}:${c.name}')\`.`;
    const methods = c.methods.map((m) => `${docComment(m.doc, '  ')}  ${m.name}(${params(m, used)}): ${returns(m, used)};`).join('\n');
    body.push(`${docComment(c.doc, '', usage)}export interface ${c.name} {\n${methods}${methods ? '\n' : ''}}\n`);
  }
  for (const f of d.functions) {
    const usage = `Remote function: \`python.remote<Parameters<${f.name}>, ReturnType<${f.name}>>('${d.module}:${f.name}')\`.`;
    body.push(`${docComment(f.doc, '', usage)}export type ${f.name} = (${params(f, used)}) => ${returns(f, used)};\n`);
  }
  const header = `// Generated by \`${command}\` from the Python module ${d.module}: do not edit.\n// \`${command} --check\` fails when this file is stale.\n`;
  const imports = used.size ? `import type { ${[...used].sort().join(', ')} } from '@tsray/core';\n` : '';
  return `${header}${imports}\n${body.join('\n')}`;
}
