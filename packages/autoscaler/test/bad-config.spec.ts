// Acceptance 4 of issue #19: bad cluster configs (unknown field, wrong type, min > max, unknown node
// type, unreachable host) → a clear error naming the field and its line, or the host; `tsray up`
// exits 1 and nothing is started (no session, no process under the test's TMPDIR).
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterConfigError, parseClusterConfig } from '../src/index.js';
import { clusterEnv, processesOf, reap, tempDir, tsray } from './fixtures/harness.js';

const GOOD = `cluster_name: bad
max_workers: 2
provider:
  type: local
  head_port: 0
  dashboard_port: 0
available_node_types:
  head:
    resources: { CPU: 1 }
    max_workers: 0
  worker:
    resources: { CPU: 2, slot: 4 }
    min_workers: 0
    max_workers: 2
head_node_type: head
`;

/** The config's problems, as `field (line N): message` lines. */
function problems(text: string): string[] {
  try {
    parseClusterConfig(text, 'c.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(ClusterConfigError);
    return (e as ClusterConfigError).problems.map((p) => `${p.field} (line ${p.line}): ${p.message}`);
  }
  throw new Error('the config validated');
}

describe('cluster config validation', () => {
  it('accepts the good config and fills defaults', () => {
    const c = parseClusterConfig(GOOD);
    expect(c.idle_timeout_minutes).toBe(5);
    expect(c.upscaling_speed).toBe(1);
    expect(c.available_node_types['worker']).toMatchObject({ resources: { CPU: 2, slot: 4 }, min_workers: 0, max_workers: 2, labels: {} });
    expect(c.provider).toEqual({ type: 'local', head_port: 0, dashboard_port: 0 });
  });

  it('names an unknown field with its line, also nested', () => {
    expect(problems(GOOD.replace('max_workers: 2\n', 'max_workers: 2\nmax_wrokers: 3\n'))).toEqual(['max_wrokers (line 3): unknown field "max_wrokers"']);
    expect(problems(GOOD.replace('    min_workers: 0\n', '    min_workers: 0\n    gpus: 1\n'))).toEqual([
      'available_node_types.worker.gpus (line 14): unknown field "gpus"',
    ]);
  });

  it('names a field of the wrong type with its line', () => {
    const p = problems(GOOD.replace('resources: { CPU: 2, slot: 4 }', 'resources: { CPU: two, slot: 4 }'));
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/^available_node_types\.worker\.resources\.CPU \(line 12\): Invalid input: expected number, received string$/);
    expect(problems(GOOD.replace('max_workers: 2\n', 'max_workers: "2"\n'))[0]).toMatch(/^max_workers \(line 2\): Invalid input: expected number/);
    expect(problems(GOOD.replace('  type: local', '  type: cloud'))[0]).toMatch(/^provider\.type \(line 4\): /);
  });

  it('refuses min_workers > max_workers, naming the node type', () => {
    expect(problems(GOOD.replace('    min_workers: 0\n', '    min_workers: 3\n'))).toEqual([
      'available_node_types.worker.min_workers (line 13): min_workers (3) is greater than max_workers (2)',
      "max_workers (line 2): max_workers (2) is less than the node types' min_workers together (3)",
    ]);
  });

  it('refuses an unknown head node type', () => {
    expect(problems(GOOD.replace('head_node_type: head', 'head_node_type: hed'))).toEqual([
      'head_node_type (line 15): unknown node type "hed"; available_node_types has: head, worker',
    ]);
  });

  it('says what is missing for the ssh provider', () => {
    const p = problems(GOOD.replace('  type: local\n', '  type: ssh\n  head_ip: 10.0.0.1\n'));
    expect(p).toEqual([
      'auth.ssh_user (line 1): the ssh provider needs auth.ssh_user',
      'auth.ssh_private_key (line 1): the ssh provider needs auth.ssh_private_key',
    ]);
  });

  it('reports YAML syntax errors with their line', () => {
    expect(problems(`${GOOD}available_node_types: [\n`)[0]).toMatch(/^ \(line 1[67]\): not valid YAML/);
  });
});

describe('tsray up with a bad config starts nothing', () => {
  let tmp: ReturnType<typeof tempDir>;
  let env: Record<string, string>;
  beforeAll(() => {
    tmp = tempDir();
    env = clusterEnv(tmp.dir);
  });
  afterAll(async () => {
    expect(await reap(tmp.dir)).toEqual([]);
    tmp.cleanup();
  });

  const nothingStarted = (): void => {
    expect(processesOf(tmp.dir)).toEqual([]);
    const root = join(tmp.dir, `tsray-${process.getuid?.() ?? 'user'}`); // the private runtime dir (sessions)
    expect(existsSync(root) ? readdirSync(root).filter((f) => f.startsWith('session')) : []).toEqual([]);
  };

  it.each([
    ['unknown field', GOOD.replace('max_workers: 2\n', 'max_workers: 2\nmax_wrokers: 3\n'), /max_wrokers \(line 3\): unknown field "max_wrokers"/],
    [
      'wrong type',
      GOOD.replace('resources: { CPU: 2, slot: 4 }', 'resources: { CPU: two, slot: 4 }'),
      /available_node_types\.worker\.resources\.CPU \(line 12\): Invalid input/,
    ],
    [
      'min > max',
      GOOD.replace('    min_workers: 0\n', '    min_workers: 3\n'),
      /available_node_types\.worker\.min_workers \(line 13\): min_workers \(3\) is greater than max_workers \(2\)/,
    ],
    ['unknown node type', GOOD.replace('head_node_type: head', 'head_node_type: hed'), /head_node_type \(line 15\): unknown node type "hed"/],
  ])('%s: exit 1, the field and line named', async (_what, text, message) => {
    const file = join(tmp.dir, 'bad.yaml');
    writeFileSync(file, text);
    const r = await tsray(['up', file], env);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^tsray: invalid cluster config ${file}:\\n`));
    expect(r.stderr).toMatch(message);
    nothingStarted();
  });

  it('unreachable host: exit 1 naming the host, nothing started', async () => {
    const key = join(tmp.dir, 'id_test');
    writeFileSync(key, 'not a key\n', { mode: 0o600 });
    const file = join(tmp.dir, 'ssh.yaml');
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): never routed, so the connection times out.
    writeFileSync(
      file,
      GOOD.replace('  type: local\n', '  type: ssh\n  head_ip: 192.0.2.1\n  worker_ips: [192.0.2.1]\n  connect_timeout_s: 1\n').concat(
        `auth:\n  ssh_user: root\n  ssh_private_key: ${key}\n`,
      ),
    );
    const r = await tsray(['up', file], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^tsray: host 192\.0\.2\.1 is unreachable: .*(timed out|unreachable|No route|Connection refused).*\(ssh root@192\.0\.2\.1 -p 22 -i /m,
    );
    nothingStarted();
  });
});
