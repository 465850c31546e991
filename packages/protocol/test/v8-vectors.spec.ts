// test-vectors/v8-values.json (scripts/gen-v8-vectors.mjs): the V8 bytes the Python tests use mean what
// the file says, checked by the running Node's own deserializer.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { describe, expect, it } from 'vitest';

interface V8Vector {
  name: string;
  note: string;
  value: unknown;
  hex: string;
}

const vectors: V8Vector[] = JSON.parse(readFileSync(fileURLToPath(new URL('../test-vectors/v8-values.json', import.meta.url)), 'utf8'));

describe('V8 structured-clone vectors (made by scripts/gen-v8-vectors.mjs)', () => {
  it('exist', () => {
    expect(vectors.map((v) => v.name)).toEqual(['number 1', 'error-like object']);
  });

  it.each(vectors.map((v) => [v.name, v] as const))('%s deserializes to its value', (_name, v) => {
    expect(v8.deserialize(Buffer.from(v.hex, 'hex'))).toEqual(v.value);
  });

  it.each(vectors.map((v) => [v.name, v] as const))('%s is what this Node writes, when it writes the same format version', (_name, v) => {
    const now = v8.serialize(v.value);
    // Byte 1 is V8's format version: a newer Node may write a newer one (the old bytes still read above).
    if (now[1] === Buffer.from(v.hex, 'hex')[1]) expect(now.toString('hex')).toBe(v.hex);
  });
});
