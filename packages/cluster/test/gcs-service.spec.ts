/**
 * GcsService alone: the GCS's answers to typed control calls (actor directory with names per
 * namespace, validated updates, KV, state gathering, bad calls), through encoded protobuf requests
 * and a fake node table. No sockets, no processes.
 */
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage, tsray, type GcsCall } from '@tsray/protocol';
import { answerGcsRequest } from '@tsray/core/internal';
import { GcsService } from '../src/gcs-service.js';

const Code = tsray.v1.ErrorCode;
const Status = tsray.v1.ActorStatus;

/** A service over two fake nodes; `asked` records the calls it sent to nodes. */
function setup() {
  const asked: GcsCall[] = [];
  const snapshots: Record<string, string> = { n1: JSON.stringify({ actors: [{ actorId: 'a' }] }), n2: JSON.stringify({ actors: [{ actorId: 'b' }] }) };
  const svc = new GcsService({
    nodes: () => [{ nodeId: 'n1', alive: true, isHead: true, address: 'tcp://10.0.0.1:1' }],
    askNodes: async (call) => {
      asked.push(call);
      return Object.entries(snapshots).map(([nodeId, doc]) => ({ nodeId, response: 'stateSnapshot' in call ? { state: { json: [doc] } } : { ok: true } }));
    },
  });
  let seq = 0;
  /** Send `call` from node n1 as it travels: encoded in an envelope, decoded, served, the answer encoded and decoded. */
  const ask = async (call: GcsCall | Record<string, never>): Promise<tsray.v1.GcsResponse> => {
    const { envelope } = decodeMessage(encodeMessage({ gcsRequest: { requestId: ++seq, ...call } }));
    const gcsResponse = await answerGcsRequest(envelope.gcsRequest!, (q) => svc.serve('n1', q));
    const answer = decodeMessage(encodeMessage({ gcsResponse })).envelope.gcsResponse as tsray.v1.GcsResponse;
    expect(Number(answer.requestId)).toBe(seq);
    return answer;
  };
  return { svc, ask, asked };
}

function actor(actorId: string, name: string, namespace: string): tsray.v1.IActorEntry {
  return {
    actorId,
    name,
    namespace,
    className: 'Counter',
    methods: ['inc'],
    module: 'file:///m.mjs',
    key: 'Counter#0',
    ownerNodeId: 'n1',
    hostNodeId: 'n1',
    status: Status.ACTOR_STATUS_PENDING,
  };
}

describe('GcsService: the actor directory', () => {
  it('keeps names per namespace: a name taken in one namespace is free in another, and free again once its actor is dead', async () => {
    const { ask } = setup();
    expect(await ask({ actorRegister: actor('a1', 'x', 'ns-a') })).toMatchObject({ ok: true });
    expect(await ask({ actorRegister: actor('b1', 'x', 'ns-b') })).toMatchObject({ ok: true });
    const taken = await ask({ actorRegister: actor('a2', 'x', 'ns-a') });
    expect(taken.error).toEqual({ code: Code.ERROR_CODE_CALL_FAILED, message: 'the actor name "x" is already taken in namespace "ns-a" (actor a1)' });

    const byName = async (namespace: string) => (await ask({ actorLookup: { name: 'x', namespace } })).actors?.actors?.map((e) => e.actorId);
    expect([await byName('ns-a'), await byName('ns-b'), await byName('ns-c')]).toEqual([['a1'], ['b1'], []]);

    expect(await ask({ actorUpdate: { actorId: 'a1', status: Status.ACTOR_STATUS_DEAD, deathCause: 'killed: by test' } })).toMatchObject({ ok: true });
    expect(await byName('ns-a')).toEqual([]);
    expect(await ask({ actorRegister: actor('a2', 'x', 'ns-a') })).toMatchObject({ ok: true });
    expect(await byName('ns-a')).toEqual(['a2']);
    const dead = (await ask({ listActors: {} })).actors?.actors?.find((e) => e.actorId === 'a1');
    expect(dead).toMatchObject({ status: Status.ACTOR_STATUS_DEAD, deathCause: 'killed: by test' });
  });

  it('applies only the fields an update sets, and nothing else a peer sends', async () => {
    const { ask, svc } = setup();
    await ask({ actorRegister: actor('a1', 'x', 'ns') });
    expect(await ask({ actorUpdate: { actorId: 'a1', status: Status.ACTOR_STATUS_ALIVE, hostNodeId: 'n2', pid: 4242 } })).toMatchObject({ ok: true });
    expect(await ask({ actorUpdate: { actorId: 'a1', numRestarts: 1 } })).toMatchObject({ ok: true });
    // Fields that are not part of an update (owner, class, name) cannot be changed through one.
    const sneaky = { actorId: 'a1', ownerNodeId: 'evil', className: 'Evil', name: 'y' } as unknown as tsray.v1.IActorUpdate;
    expect(await answerGcsRequest({ requestId: 1, actorUpdate: sneaky }, (q) => svc.serve('n1', q))).toMatchObject({ ok: true });
    expect(svc.actorEntries()).toEqual([
      expect.objectContaining({
        actorId: 'a1',
        name: 'x',
        className: 'Counter',
        ownerNodeId: 'n1',
        hostNodeId: 'n2',
        state: 'ALIVE',
        pid: 4242,
        numRestarts: 1,
      }),
    ]);
    expect(await ask({ actorUpdate: { actorId: 'nobody', status: Status.ACTOR_STATUS_ALIVE } })).toMatchObject({ ok: false });
  });

  it("adds 1 to an actor's version each time it becomes ALIVE (a new incarnation), not on other updates", async () => {
    const { ask } = setup();
    await ask({ actorRegister: { ...actor('a1', '', 'ns'), maxTaskRetries: -1 } });
    const lookup = async () => (await ask({ actorLookup: { actorId: 'a1' } })).actors!.actors![0]!;
    expect(await lookup()).toMatchObject({ version: 0, maxTaskRetries: -1 });
    await ask({ actorUpdate: { actorId: 'a1', status: Status.ACTOR_STATUS_STARTING, hostNodeId: 'n2' } });
    await ask({ actorUpdate: { actorId: 'a1', status: Status.ACTOR_STATUS_ALIVE, hostNodeId: 'n2', pid: 7 } });
    expect(await lookup()).toMatchObject({ version: 1, hostNodeId: 'n2' });
    // The same incarnation reported again, or a pid: no new version.
    await ask({ actorUpdate: { actorId: 'a1', status: Status.ACTOR_STATUS_ALIVE, hostNodeId: 'n2' } });
    await ask({ actorUpdate: { actorId: 'a1', pid: 8 } });
    expect((await lookup()).version).toBe(1);
    // Its node died, the owner restarted it on n3: a newer incarnation.
    await ask({ actorUpdate: { actorId: 'a1', status: Status.ACTOR_STATUS_RESTARTING } });
    await ask({ actorUpdate: { actorId: 'a1', status: Status.ACTOR_STATUS_ALIVE, hostNodeId: 'n3', numRestarts: 1 } });
    expect(await lookup()).toMatchObject({ version: 2, hostNodeId: 'n3' });
    // Restarted in place (its process crashed; the host reports ALIVE with more restarts): newer too.
    await ask({ actorUpdate: { actorId: 'a1', status: Status.ACTOR_STATUS_ALIVE, hostNodeId: 'n3', numRestarts: 2 } });
    expect((await lookup()).version).toBe(3);
  });

  it('refuses a malformed update or registration as MALFORMED naming the field, and changes nothing', async () => {
    const { ask, svc } = setup();
    await ask({ actorRegister: actor('a1', 'x', 'ns') });
    const before = structuredClone(svc.actorEntries());
    const cases: [GcsCall, string][] = [
      [{ actorUpdate: { actorId: 'a1', status: 99 as tsray.v1.ActorStatus } }, 'status: unknown actor status 99'],
      [{ actorUpdate: { actorId: 'a1', status: Status.ACTOR_STATUS_UNSPECIFIED } }, 'status: unknown actor status 0'],
      [{ actorUpdate: { status: Status.ACTOR_STATUS_ALIVE } }, 'actorId: must be set'],
      [{ actorUpdate: { actorId: 'a1', hostNodeId: '' } }, 'hostNodeId: must be set'],
      [{ actorRegister: { ...actor('a2', 'y', 'ns'), status: 42 as tsray.v1.ActorStatus } }, 'status: unknown actor status 42'],
      [{ actorRegister: { ...actor('', 'y', 'ns') } }, 'actorId: must be set'],
      [{ actorRegister: actor('a3', 'n'.repeat(1025), 'ns') }, 'name: longer than 1024 characters'],
    ];
    for (const [call, message] of cases)
      expect((await ask(call)).error, JSON.stringify(call).slice(0, 80)).toEqual({ code: Code.ERROR_CODE_MALFORMED, message });
    expect(svc.actorEntries()).toEqual(before);
  });

  it('keeps a dead actor dead', async () => {
    const { ask } = setup();
    await ask({ actorRegister: actor('a1', 'x', 'ns') });
    await ask({ actorUpdate: { actorId: 'a1', status: Status.ACTOR_STATUS_DEAD } });
    const revive = await ask({ actorUpdate: { actorId: 'a1', status: Status.ACTOR_STATUS_ALIVE } });
    expect(revive.error).toEqual({ code: Code.ERROR_CODE_CALL_FAILED, message: 'actor a1 is dead; it cannot become ALIVE' });
    expect((await ask({ actorLookup: { actorId: 'a1' } })).actors?.actors).toEqual([]);
  });

  it('marks the live actors of a dead node RESTARTING', async () => {
    const { ask, svc } = setup();
    await ask({ actorRegister: { ...actor('a1', '', 'ns'), hostNodeId: 'n2' } });
    await ask({ actorRegister: { ...actor('a2', '', 'ns'), hostNodeId: 'n1' } });
    svc.nodeDied('n2');
    expect(svc.actorEntries().map((e) => [e.actorId, e.state])).toEqual([
      ['a1', 'RESTARTING'],
      ['a2', 'PENDING'],
    ]);
  });
});

describe('GcsService: KV, listings, bad calls', () => {
  it('stores bytes: put (overwrite or not), get, keys by prefix, delete', async () => {
    const { ask } = setup();
    const bytes = Buffer.from([0, 1, 2, 255]);
    expect(await ask({ kvPut: { key: 'pkg:a', value: bytes, overwrite: false } })).toMatchObject({ added: true });
    expect(await ask({ kvPut: { key: 'pkg:a', value: Buffer.from('other'), overwrite: false } })).toMatchObject({ added: false });
    expect(Buffer.from((await ask({ kvGet: { key: 'pkg:a' } })).value!.value!)).toEqual(bytes);
    await ask({ kvPut: { key: 'pkg:b', value: Buffer.from('b'), overwrite: true } });
    await ask({ kvPut: { key: 'other', value: Buffer.from('o'), overwrite: true } });
    expect((await ask({ kvKeys: { key: 'pkg:' } })).keys?.keys).toEqual(['pkg:a', 'pkg:b']);
    expect(await ask({ kvDel: { key: 'pkg:a' } })).toMatchObject({ deleted: true });
    expect(await ask({ kvDel: { key: 'pkg:a' } })).toMatchObject({ deleted: false });
    const gone = await ask({ kvGet: { key: 'pkg:a' } });
    expect([gone.result, gone.value?.value ?? undefined]).toEqual(['value', undefined]);
    expect((await ask({ kvGet: { key: '' } })).error).toEqual({ code: Code.ERROR_CODE_MALFORMED, message: 'key: must be set' });
  });

  it("gathers every node's state snapshot, and tells every node when a job ends", async () => {
    const { ask, asked, svc } = setup();
    expect((await ask({ stateGather: { what: 'actors' } })).state?.json?.map((d) => JSON.parse(d))).toEqual([
      { actors: [{ actorId: 'a' }] },
      { actors: [{ actorId: 'b' }] },
    ]);
    expect(await svc.gatherState('all')).toEqual([{ actors: [{ actorId: 'a' }] }, { actors: [{ actorId: 'b' }] }]);
    expect(await ask({ jobEnd: { jobId: 'job-7' } })).toMatchObject({ ok: true });
    expect(asked).toEqual([{ stateSnapshot: { what: 'actors' } }, { stateSnapshot: { what: 'all' } }, { jobEnd: { jobId: 'job-7' } }]);
  });

  it("lists nodes and answers the head's jobs and dashboard URL once the head sets them", async () => {
    const { ask, svc } = setup();
    expect((await ask({ listNodes: {} })).nodes?.nodes?.map((n) => n.nodeId)).toEqual(['n1']);
    expect((await ask({ listJobs: {} })).state?.json).toEqual(['[]']);
    expect(await ask({ clusterDashboard: {} })).toMatchObject({ dashboardUrl: '' });
    svc.listJobs = () => [{ jobId: 'j1' }];
    svc.dashboardUrl = 'http://10.0.0.1:8265';
    expect((await ask({ listJobs: {} })).state?.json).toEqual(['[{"jobId":"j1"}]']);
    expect(await ask({ clusterDashboard: {} })).toMatchObject({ dashboardUrl: 'http://10.0.0.1:8265' });
  });

  it('answers a request without a known call, and a call meant for nodes, with UNKNOWN_MESSAGE; then keeps serving', async () => {
    const { ask } = setup();
    // A call this GCS does not know (a newer peer's field 99) decodes as no call at all.
    const newer = Buffer.concat([tsray.v1.GcsRequest.encode({ requestId: 5 }).finish(), Buffer.from([0x9a, 0x06, 0x00])]);
    const decoded = tsray.v1.GcsRequest.decode(newer);
    expect(decoded.call).toBeUndefined();
    const { svc } = setup();
    expect(await answerGcsRequest(decoded, (q) => svc.serve('n1', q))).toEqual({
      requestId: 5,
      error: { code: Code.ERROR_CODE_UNKNOWN_MESSAGE, message: 'a GcsRequest without a known call (a newer peer, or a bad message)' },
    });
    expect(await ask({})).toMatchObject({ error: { code: Code.ERROR_CODE_UNKNOWN_MESSAGE } });
    expect(await ask({ stateQuery: { what: 'nodes' } })).toMatchObject({
      error: { code: Code.ERROR_CODE_UNKNOWN_MESSAGE, message: 'the GCS does not serve the control call stateQuery' },
    });
    expect(await ask({ listNodes: {} })).toMatchObject({ nodes: { nodes: [expect.objectContaining({ nodeId: 'n1' })] } });
  });
});
