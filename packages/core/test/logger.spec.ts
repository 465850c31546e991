/**
 * The root logger never writes a secret: tokens and auth headers are censored wherever they sit, and
 * URL credentials are cut from messages, fields and errors; component children keep the settings.
 */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { componentLogger, createLogger, logger, setLogger, stripUrlCredentials } from '../src/logger.js';

/** A root writing into an array of lines. */
function memoryRoot(): { lines: string[]; root: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, root: createLogger({ level: 'info', destination }) };
}

async function flushed(): Promise<void> {
  await new Promise((r) => setImmediate(r));
}

describe('logger redaction', () => {
  const original = logger();
  afterEach(() => setLogger(original));

  it('logs an object holding tokens without any of them', async () => {
    const { lines, root } = memoryRoot();
    root.warn(
      {
        token: 'SECRET-top',
        authProof: 'SECRET-proof',
        config: { token: 'SECRET-nested', role: 'node' },
        headers: { authorization: 'Bearer SECRET-header' },
        env: { TSRAY_TOKEN: 'SECRET-env' },
        url: 'http://admin:SECRET-pass@head.example:8265/api/jobs',
        err: new Error('fetch https://u:SECRET-err@mirror/simple failed'),
      },
      'connecting to tcp://bob:SECRET-msg@10.0.0.1:6379',
    );
    await flushed();
    expect(lines).toHaveLength(1);
    const out = lines[0]!;
    expect(out).not.toContain('SECRET');
    const rec = JSON.parse(out);
    expect(rec.token).toBe('[redacted]');
    expect(rec.config).toEqual({ token: '[redacted]', role: 'node' });
    expect(rec.headers.authorization).toBe('[redacted]');
    expect(rec.url).toBe('http://head.example:8265/api/jobs');
    expect(rec.msg).toBe('connecting to tcp://10.0.0.1:6379');
    expect(rec.err.message).toBe('fetch https://mirror/simple failed');
  });

  it("a component's child of an injected root redacts too and names its component", async () => {
    const { lines, root } = memoryRoot();
    setLogger(root);
    componentLogger('cluster.jobs').info({ token: 'SECRET-child' }, 'job started');
    await flushed();
    const rec = JSON.parse(lines[0]!);
    expect(rec.component).toBe('cluster.jobs');
    expect(rec.token).toBe('[redacted]');
    expect(lines[0]).not.toContain('SECRET');
  });

  it('stripUrlCredentials keeps URLs without credentials as they are', () => {
    expect(stripUrlCredentials('see http://host:1/a?b=c and ipc:///tmp/x')).toBe('see http://host:1/a?b=c and ipc:///tmp/x');
    expect(stripUrlCredentials('pip https://user@index/simple')).toBe('pip https://index/simple');
  });
});
