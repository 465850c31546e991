#!/usr/bin/env node
// Generates the TypeScript side of the wire protocol from proto/tsray/v1/tsray.proto:
//   pbjs -t static-module -w es6 --force-number -r tsray  -> src/generated/tsray.js
//   pbts                                                  -> src/generated/tsray.d.ts
// and writes both to dist/generated/ too (tsc does not copy .js files; dist/index.js imports them).
//
// Runs as the Nx `generate` target (the `build` target depends on it) and from the vitest global
// setup. It is a no-op when src/generated/.stamp matches the hash of the proto, this script and the
// protobufjs(-cli) versions. Pass --force to regenerate anyway.
//
// Post-processing (checked: the script fails if pbjs output no longer has the expected shape):
// - `--force-number` only changes the types; at run time protobufjs still makes Long objects for
//   64-bit fields whenever the `long` package is installed. The generated module therefore sees a
//   view of `protobuf.util` without `Long` (fromObject/toObject take their number paths) and wraps
//   `reader.uint64()`/`reader.int64()` so decoded messages carry plain numbers, as the .d.ts says.
//   Values above 2^53 lose precision; sizes and offsets never get there.
// - The .d.ts drops pbts' `import Long = require("long")` (no Long left in the types).
// - String fields are read by `$str(reader)` instead of `reader.stringVerify()`. protobufjs builds a
//   string under 64 bytes by `str += String.fromCharCode(8 bytes)`, a rope of small pieces that V8
//   flattens (allocates and copies again) the first time it is hashed: every id read off the wire is
//   a Map key at once, so the node paid that per id and its garbage collector the pieces. `$str`
//   makes one flat string (`latin1Slice`) when every byte is ASCII, else decodes with a fatal
//   TextDecoder: invalid UTF-8 is still refused (a TypeError), as by stringVerify. The node's CPU per
//   1:n actor call went from 31–37 to 25–28 µs on the 2-core machine (bench/tsray/actor-call-cpu.ts).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const pkgDir = dirname(dirname(fileURLToPath(import.meta.url)));
const protoFile = join(pkgDir, 'proto', 'tsray', 'v1', 'tsray.proto');
const genDir = join(pkgDir, 'src', 'generated');
const distGenDir = join(pkgDir, 'dist', 'generated');
const outputs = ['tsray.js', 'tsray.d.ts'];

function stampOf() {
  const h = createHash('sha256');
  h.update(readFileSync(protoFile));
  h.update(readFileSync(fileURLToPath(import.meta.url)));
  for (const p of ['protobufjs/package.json', 'protobufjs-cli/package.json']) {
    h.update(JSON.parse(readFileSync(require.resolve(p), 'utf8')).version);
  }
  return h.digest('hex');
}

function upToDate(stamp) {
  const stampFile = join(genDir, '.stamp');
  if (!existsSync(stampFile) || readFileSync(stampFile, 'utf8').trim() !== stamp) return false;
  return outputs.every((f) => existsSync(join(genDir, f)) && existsSync(join(distGenDir, f)));
}

/** Runs a protobufjs-cli main(args, cb) and resolves when it calls back. */
function runCli(mod, args) {
  return new Promise((resolve, reject) => {
    mod.main(args, (err, output) => (err ? reject(err) : resolve(output)));
  });
}

/** Replaces `from` by `to` (every occurrence), failing when `from` does not occur at least `min` times. */
function mustReplace(text, from, to, what, min = 1) {
  const n = text.split(from).length - 1;
  if (n < min) {
    throw new Error(
      `generate.mjs: expected pbjs output to contain ${JSON.stringify(from)} (${what}), found it ${n} times; ` +
        'protobufjs-cli changed its output, update the post-processing in packages/protocol/scripts/generate.mjs',
    );
  }
  return text.split(from).join(to);
}

/** The string reader the generated module uses (why: the header of this file). */
const STRING_READER = `// tsray: strings read flat (see packages/protocol/scripts/generate.mjs).
const $utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const $str = (reader) => {
    const length = reader.size(), start = reader.pos, end = start + length;
    if (end > reader.len) throw RangeError("index out of range: " + start + " + " + length + " > " + reader.len);
    reader.pos = end;
    const buf = reader.buf;
    if (buf.latin1Slice === undefined) return $utf8.decode(buf.subarray(start, end));
    for (let i = start; i < end; i++) if (buf[i] > 0x7f) return $utf8.decode(buf.subarray(start, end));
    return buf.latin1Slice(start, end);
};`;

function postProcessJs(js) {
  js = mustReplace(
    js,
    '$util = $protobuf.util;',
    '$util = Object.create($protobuf.util, { Long: { value: null } });\n' +
      '// tsray: 64-bit fields are plain numbers (see packages/protocol/scripts/generate.mjs).\n' +
      'const $num = (v) => (typeof v === "number" ? v : v.toNumber());\n' +
      STRING_READER,
    'the $util alias',
  );
  js = mustReplace(js, 'reader.stringVerify()', '$str(reader)', 'string reads');
  if (js.includes('.string()') || js.includes('stringVerify')) {
    throw new Error('generate.mjs: pbjs output reads strings another way too; extend the string post-processing');
  }
  js = mustReplace(js, 'reader.uint64()', '$num(reader.uint64())', 'uint64 reads');
  js = mustReplace(js, 'reader.int64()', '$num(reader.int64())', 'int64 reads', 0);
  if (/reader\.(sint64|fixed64|sfixed64)\(\)/.test(js)) {
    throw new Error('generate.mjs: the proto now has sint64/fixed64 fields; extend the number post-processing');
  }
  return '// GENERATED by packages/protocol/scripts/generate.mjs from proto/tsray/v1/tsray.proto. DO NOT EDIT.\n' + js;
}

function postProcessDts(dts) {
  dts = mustReplace(dts, 'import Long = require("long");\n', '', 'the Long import');
  if (/\bLong\b/.test(dts)) throw new Error('generate.mjs: the .d.ts still mentions Long; was --force-number dropped?');
  return '// GENERATED by packages/protocol/scripts/generate.mjs from proto/tsray/v1/tsray.proto. DO NOT EDIT.\n' + dts;
}

async function main() {
  const force = process.argv.includes('--force');
  const stamp = stampOf();
  if (!force && upToDate(stamp)) return;

  const pbjs = require('protobufjs-cli/pbjs.js');
  const pbts = require('protobufjs-cli/pbts.js');
  // pbjs does not create the output directory; it writes into a temp dir, and the results are
  // renamed into place so that a concurrent reader never sees a half-written file.
  const tmp = mkdtempSync(join(tmpdir(), 'tsray-protocol-gen-'));
  try {
    const rawJs = join(tmp, 'tsray.raw.js');
    await runCli(pbjs, ['-t', 'static-module', '-w', 'es6', '--force-number', '-r', 'tsray', '-p', join(pkgDir, 'proto'), '-o', rawJs, protoFile]);
    const rawDts = join(tmp, 'tsray.raw.d.ts');
    await runCli(pbts, ['-o', rawDts, rawJs]);
    const files = {
      'tsray.js': postProcessJs(readFileSync(rawJs, 'utf8')),
      'tsray.d.ts': postProcessDts(readFileSync(rawDts, 'utf8')),
    };
    for (const dir of [genDir, distGenDir]) {
      mkdirSync(dir, { recursive: true });
      for (const [name, text] of Object.entries(files)) {
        const part = join(dir, `.${name}.${process.pid}.tmp`);
        writeFileSync(part, text);
        renameSync(part, join(dir, name));
      }
    }
    writeFileSync(join(genDir, '.stamp'), `${stamp}\n`);
    process.stdout.write(`generated ${outputs.map((f) => join('src/generated', f)).join(', ')} (+ dist/generated)\n`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
