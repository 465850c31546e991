/** runtime-env has no logger root of its own: its logs go where setLogger routes them, else nowhere. */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { logger, setLogger } from '../src/logger.js';

describe('runtime-env logger', () => {
  it('is silent until a logger is injected, then writes through the injected one', async () => {
    expect(logger().level).toBe('silent');
    const lines: string[] = [];
    const sink = new Writable({ write: (c, _e, done) => (lines.push(String(c)), done()) });
    let current = pino({ level: 'info' }, sink);
    setLogger(() => current);
    logger().info('first');
    current = current.child({ component: 'runtime-env' });
    logger().info('second');
    await new Promise((r) => setImmediate(r));
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual(['first', 'second']);
    expect(JSON.parse(lines[1]!).component).toBe('runtime-env');
  });
});
