/**
 * Node socket addresses carry the node id (a driver given an explicit ipc:// address names that node
 * as the audience of its token proof, auth.ts); other addresses carry none.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeIdOfSocketAddress, nodeSocketAddress } from '../../src/node/socket-path.js';

const session = mkdtempSync(join(tmpdir(), 'tsray-socket-path-'));
afterAll(() => rmSync(session, { recursive: true, force: true }));

describe('node socket addresses', () => {
  it('name the whole node id, which nodeIdOfSocketAddress reads back', () => {
    const address = nodeSocketAddress(session, '0123456789abcdef');
    expect(address).toMatch(/^ipc:\/\/.*-0123456789abcdef\.sock$/);
    expect(nodeIdOfSocketAddress(address)).toBe('0123456789abcdef');
  });

  it('give no node id for tcp addresses and sockets named otherwise', () => {
    expect(nodeIdOfSocketAddress('tcp://127.0.0.1:6380')).toBeUndefined();
    expect(nodeIdOfSocketAddress(`ipc://${join(session, 'node.sock')}`)).toBeUndefined();
    expect(nodeIdOfSocketAddress('ipc:///tmp/tsray-0/123-node.sock')).toBeUndefined();
  });
});
