import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ValidationError } from '@tsray/core';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MODEL, ensureModel } from '../src/models.js';

const python = fileURLToPath(new URL('../../../.venv/bin/python', import.meta.url));

describe('ensureModel', () => {
  it('refuses an unknown name at the edge, naming the known ones', () => {
    expect(() => ensureModel('gpt-17', { python })).toThrow(ValidationError);
    expect(() => ensureModel('gpt-17', { python })).toThrow(/unknown model "gpt-17"; known: smollm2-135m-instruct/);
  });

  it('returns the converted SmolLM2 folder from the shared model cache (converted once, then reused)', { timeout: 600_000 }, () => {
    const dir = ensureModel(DEFAULT_MODEL, { python });
    expect(dir.endsWith(DEFAULT_MODEL)).toBe(true);
    expect(existsSync(join(dir, '.complete'))).toBe(true);
    expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).model_type).toBe('llama');
    expect(readFileSync(join(dir, 'chat_template.jinja'), 'utf8')).toContain('<|im_start|>');
    expect(ensureModel(DEFAULT_MODEL, { python })).toBe(dir);
  });
});
