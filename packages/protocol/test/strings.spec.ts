/**
 * String fields as the generated module reads them (`$str` of scripts/generate.mjs): one flat string
 * for ASCII, a strict UTF-8 decode otherwise, invalid UTF-8 and lengths past the end refused.
 */
import { describe, expect, it } from 'vitest';
import { tsray } from '../src/index.js';

const R = tsray.v1.RefUpdates;

/** RefUpdates{add: ids} as wire bytes. */
function encoded(ids: string[]): Buffer {
  return Buffer.from(R.encode({ add: ids }).finish());
}

function ascii(length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += String.fromCharCode(33 + ((i * 7) % 94));
  return s;
}

describe('string fields', () => {
  it('read ASCII strings of every length around the 8-byte steps and the 64-byte switch unchanged', () => {
    const ids = [0, 1, 7, 8, 13, 25, 63, 64, 65, 200, 5000].map(ascii);
    expect(R.decode(encoded(ids)).add).toEqual(ids);
  });

  it('read UTF-8 strings (2-, 3- and 4-byte sequences, before and after ASCII) unchanged', () => {
    const ids = ['naïve', 'ok ✓', '日本語のテキスト', 'emoji 😀 at the end', `${ascii(70)}é`, `é${ascii(70)}`, 'ÿ'];
    expect(R.decode(encoded(ids)).add).toEqual(ids);
  });

  it('read the same strings from a plain Uint8Array as from a Buffer', () => {
    const ids = [ascii(30), 'naïve ✓', ''];
    const bytes = encoded(ids);
    expect(R.decode(new Uint8Array(bytes)).add).toEqual(ids);
  });

  it('refuse a string that is not UTF-8 (a byte 0xff in place of an ASCII one)', () => {
    const bytes = encoded(['abcdef']);
    bytes[bytes.indexOf(0x61)] = 0xff;
    expect(() => R.decode(bytes)).toThrow(TypeError);
    const long = encoded([ascii(100)]);
    long[long.length - 1] = 0xc3; // a lead byte with nothing after it
    expect(() => R.decode(long)).toThrow(TypeError);
  });

  it('refuse a string whose length runs past the end of the message', () => {
    const bytes = encoded(['abcdef']);
    expect(() => R.decode(bytes.subarray(0, bytes.length - 2))).toThrow(RangeError);
  });
});
