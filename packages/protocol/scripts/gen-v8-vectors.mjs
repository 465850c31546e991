#!/usr/bin/env node
// Writes test-vectors/v8-values.json: values in V8's structured-clone format (`ENCODING_V8` objects:
// what a TypeScript worker's put() stores), made by the running Node's `v8.serialize`, never typed by
// hand. Each entry is {name, note, value, hex}: `value` is the JSON of the value, `hex` its bytes.
// Python tests use them as the bytes a node holds for a TypeScript value (python/tests/test_client.py);
// test/v8-vectors.spec.ts checks that each `hex` deserializes to `value` and, on the Node that wrote
// the file (same V8 format version), that it is what v8.serialize writes today.
//
// Run: `node packages/protocol/scripts/gen-v8-vectors.mjs` (`npm run v8-vectors -w @tsray/protocol`),
// review the diff, commit. `--check` exits 1 if the file is not what this Node writes.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';

const out = join(dirname(dirname(fileURLToPath(import.meta.url))), 'test-vectors', 'v8-values.json');

/** [name, note, value]: JSON values only, so the file can state each one plainly. */
const VALUES = [
  ['number 1', 'a TypeScript task returned 1: Python cannot read it before the node converts it', 1],
  ['error-like object', 'an object shaped like an error, as tsray stored errors before ErrorInfo: not an ErrorInfo', { type: 'TaskError', message: 'boom' }],
];

const vectors = VALUES.map(([name, note, value]) => ({ name, note, value, hex: v8.serialize(value).toString('hex') }));
const text = `${JSON.stringify(vectors, null, 2)}\n`;
if (process.argv.includes('--check')) {
  if (readFileSync(out, 'utf8') !== text) {
    console.error(`${out} is not what node ${process.version} writes: run node ${fileURLToPath(import.meta.url)}`);
    process.exit(1);
  }
} else {
  writeFileSync(out, text);
  console.log(`wrote ${out} (${vectors.length} values, node ${process.version})`);
}
