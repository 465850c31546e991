import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { BODY_KINDS, decodeMessage, tsray } from '../src/index.js';

interface Vector {
  name: string;
  message: Record<string, unknown>;
  hex: string;
}

const vectors: Vector[] = JSON.parse(readFileSync(fileURLToPath(new URL('../test-vectors/golden.json', import.meta.url)), 'utf8'));
const errorVectors: Vector[] = JSON.parse(readFileSync(fileURLToPath(new URL('../test-vectors/error-info.json', import.meta.url)), 'utf8'));
const protoPath = fileURLToPath(new URL('../proto/tsray/v1/tsray.proto', import.meta.url));
const E = tsray.v1.Envelope;
const EI = tsray.v1.ErrorInfo;

/** Fields of `rootName` and every message reachable from it that no vector sets to a non-default value. */
function fieldsNotCovered(rootName: string, vs: Vector[]): string[] {
  const root = protobuf.loadSync(protoPath).resolveAll();
  const rootType = root.lookupType(rootName);
  const seen = new Set<string>();
  const walk = (type: protobuf.Type, obj: Record<string, unknown>): void => {
    for (const [key, value] of Object.entries(obj)) {
      const field = type.fields[key];
      if (!field) throw new Error(`${type.fullName} has no field ${key}`);
      seen.add(`${type.fullName}.${key}`);
      if (field.resolvedType instanceof protobuf.Type) {
        const sub = field.resolvedType;
        for (const item of field.repeated ? (value as Record<string, unknown>[]) : [value as Record<string, unknown>]) {
          walk(sub, item);
        }
      }
    }
  };
  for (const v of vs) walk(rootType, v.message);
  const missing: string[] = [];
  const visited = new Set<string>();
  const expectAll = (type: protobuf.Type): void => {
    if (visited.has(type.fullName)) return;
    visited.add(type.fullName);
    for (const field of type.fieldsArray) {
      if (!seen.has(`${type.fullName}.${field.name}`)) missing.push(`${type.fullName}.${field.name}`);
      if (field.resolvedType instanceof protobuf.Type) expectAll(field.resolvedType);
    }
  };
  expectAll(rootType);
  return missing;
}

describe('golden vectors (shared with python/tests/test_golden.py)', () => {
  it('exist', () => {
    expect(vectors.length).toBeGreaterThanOrEqual(BODY_KINDS.length);
  });

  it.each(vectors.map((v) => [v.name, v] as const))('%s encodes to the golden bytes', (_name, v) => {
    const bytes = E.encode(E.fromObject(v.message)).finish();
    expect(Buffer.from(bytes).toString('hex')).toBe(v.hex);
  });

  it.each(vectors.map((v) => [v.name, v] as const))('%s decodes to the golden JSON', (_name, v) => {
    const decoded = E.decode(Buffer.from(v.hex, 'hex'));
    expect(E.toObject(decoded, { longs: String, enums: String, bytes: String })).toEqual(v.message);
    // The framing layer accepts it too and names the body it carries.
    const { kind } = decodeMessage([Buffer.from(v.hex, 'hex')]);
    expect(Object.keys(v.message)).toContain(kind);
  });

  it('cover every body message and every field of every reachable message with a non-default value', () => {
    expect(fieldsNotCovered('tsray.v1.Envelope', vectors), 'fields no golden vector sets: add them in scripts/gen-golden.mjs').toEqual([]);
  });

  it('BODY_KINDS lists the envelope oneof exactly, in field order', () => {
    const root = protobuf.loadSync(protoPath).resolveAll();
    const oneof = root.lookupType('tsray.v1.Envelope').oneofs['body']!;
    const ordered = [...oneof.fieldsArray].sort((a, b) => a.id - b.id).map((f) => f.name);
    expect([...BODY_KINDS]).toEqual(ordered);
  });
});

describe('ErrorInfo vectors (error objects; shared with python/tests/test_golden.py)', () => {
  it.each(errorVectors.map((v) => [v.name, v] as const))('%s encodes to the golden bytes and decodes back', (_name, v) => {
    expect(Buffer.from(EI.encode(EI.fromObject(v.message)).finish()).toString('hex')).toBe(v.hex);
    expect(EI.toObject(EI.decode(Buffer.from(v.hex, 'hex')), { longs: String, enums: String, bytes: String })).toEqual(v.message);
  });

  it('set every ErrorInfo field (and every oneof member) somewhere', () => {
    expect(fieldsNotCovered('tsray.v1.ErrorInfo', errorVectors), 'fields no ErrorInfo vector sets: add them in scripts/gen-golden.mjs').toEqual([]);
  });
});
