// Installers run package code: they get no tsray secret in their environment, and credentials in
// index URLs never reach the setup log (issue #17).
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { redactCredentials, runCommand, withoutSecrets } from '../src/index.js';
import { tempDir } from './helpers.js';

const base = tempDir('secrets');
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe('installer commands', () => {
  it('run without TSRAY_TOKEN (nor other tsray secrets), log 0600 with credentials redacted', async () => {
    const logFile = join(base, 'setup.log');
    const env = { ...process.env, TSRAY_TOKEN: 'tok-secret-1', TSRAY_TOKEN_FILE: '/x/token', TSRAY_API_KEY: 'k', TSRAY_LOG_LEVEL: 'warn' };
    const url = 'https://alice:hunter2@pypi.example.com/simple';
    const r = await runCommand('/bin/sh', ['-c', 'env; echo "Looking in indexes: $1"', 'sh', url, '--index-url', url], { env, timeoutMs: 30_000, logFile });
    expect(r.code).toBe(0);
    expect(r.output).not.toContain('tok-secret-1');
    expect(r.output).not.toMatch(/^TSRAY_(TOKEN|API_KEY)/m);
    expect(r.output).toMatch(/^TSRAY_LOG_LEVEL=warn$/m); // other settings pass
    const log = readFileSync(logFile, 'utf8');
    expect(log).not.toContain('hunter2');
    expect(log).toContain('https://***@pypi.example.com/simple');
    expect(statSync(logFile).mode & 0o777).toBe(0o600);
  });

  it('redactCredentials keeps URLs without credentials and email-like text', () => {
    expect(redactCredentials('--index-url=https://u:p@h/simple npm --registry http://tok@r.example/ x@y.z https://h/p')).toBe(
      '--index-url=https://***@h/simple npm --registry http://***@r.example/ x@y.z https://h/p',
    );
    expect(Object.keys(withoutSecrets({ TSRAY_TOKEN: 'a', PATH: '/bin', TSRAY_ADDRESS: 'h:1' })).sort()).toEqual(['PATH', 'TSRAY_ADDRESS']);
  });
});
