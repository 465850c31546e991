#!/usr/bin/env node
// Writes test-vectors/golden.json (and test-vectors/error-info.json, the ErrorInfo vectors): one entry per message of the Envelope's body oneof (and a few
// more for nested oneofs), each {name, message: <Envelope as proto3 JSON>, hex: <encoded bytes>}.
//
// Run it (after `nx build protocol`) only when the .proto changes, review the diff, and commit the
// result. The hex is produced here by the TypeScript side once; the vitest and the pytest suites
// then CHECK both directions against it (encode JSON -> hex, decode hex -> JSON), so the two
// languages cannot drift. Every field of every message is set to a non-default value somewhere
// (the tests check that too): uint64 values above 2^32, unicode strings, repeated fields, every
// member of every oneof.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = dirname(dirname(fileURLToPath(import.meta.url)));
const { tsray } = await import(join(pkgDir, 'src', 'generated', 'tsray.js'));
const E = tsray.v1.Envelope;

const V = 1; // PROTOCOL_VERSION
const fn = (name) => ({ moduleUrl: `file:///home/ü/app/${name}.mjs`, key: `${name}#0`, name: `${name} ✓` });
const inlineObj = (id, frame, offset) => ({
  objectId: id,
  encoding: 'ENCODING_V8',
  rawKind: 'Buffer',
  // proto3 JSON leaves out fields at their default (0), so frame/offset 0 are omitted.
  inline: { ...(frame ? { frame } : {}), ...(offset ? { offset: String(offset) } : {}), length: '4294967301' },
  containedRefs: [`${id}-ref-a`, `${id}-ref-б`],
  size: '4294967301',
});
const shmObj = (id) => ({
  objectId: id,
  encoding: 'ENCODING_RAW',
  rawKind: 'Float64Array',
  shm: { offset: '8589934656', length: '4294967360' },
  containedRefs: ['ref-日本'],
  size: '4294967360',
});
const spillObj = (id) => ({
  objectId: id,
  encoding: 'ENCODING_MSGPACK',
  rawKind: 'Uint8Array',
  spillPath: '/tmp/tsray/session-1/spill/😀.bin',
  containedRefs: ['r1', 'r2', 'r3'],
  size: '12884901888',
});

const actorSpec = {
  actorId: 'actor-😀',
  className: 'Counter ✓',
  methods: ['increment', 'get_counter'],
  name: 'scheduler',
  namespace: 'head-ü',
  detached: true,
  getIfExists: true,
  maxRestarts: -1,
  maxTaskRetries: 3,
  maxConcurrency: 1000,
  concurrencyGroups: [{ name: 'io', maxConcurrency: 2, methods: ['fetch', 'store'] }],
  holdResources: [{ name: 'GPU', units: '20000' }],
  isAsync: true,
  stateInfoJson: '{"tensorParallelSize":2}',
};

const NODE_INFO = {
  nodeId: 'node-ü',
  address: 'tcp://10.0.0.2:43210',
  hostname: 'host-β',
  pid: 4000000001,
  isHead: true,
  total: [
    { name: 'CPU', units: '40000' },
    { name: 'GPU', units: '80000' },
  ],
  available: [{ name: 'CPU', units: '20000' }],
  // One entry: map order on the wire is not fixed across languages.
  labels: { 'ray.io/accelerator-type': 'H200-ü' },
  alive: true,
  startTimeMs: '1795910400123',
  deathReason: 'missed heartbeats for 3.0 s',
  gpuIds: ['0', '7'],
  localAddress: 'ipc:///tmp/tsray/session-ü/node.sock',
  sessionDir: '/tmp/tsray/session-ü',
};

const vectors = [
  [
    'register_worker',
    {
      registerWorker: {
        workerId: 'worker-ä1',
        pid: 4000000000,
        language: 'python🐍',
        kind: 'driver',
        namespace: 'ns-ü',
        jobId: 'job-ж',
        authProof: 'q83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4k=',
        authTime: '1795910400123',
        authNonce: 'nonce-ü',
        remote: true,
      },
    },
  ],
  [
    'worker_accepted',
    {
      workerAccepted: {
        nodeId: 'node-Ω',
        shmPath: '/dev/shm/tsray-séssion-arena',
        shmSize: '17179869184',
        inlineThreshold: '4294967296',
        jobId: 'job-ω',
        namespace: 'head',
      },
    },
  ],
  [
    'execute_tasks',
    {
      executeTasks: {
        tasks: [
          {
            taskId: 'task-α',
            function: { ...fn('square'), codeRoot: '/home/ü/app' },
            args: [inlineObj('obj-1', 2, 4294967297), shmObj('obj-2'), spillObj('obj-3')],
            returnIds: ['ret-1', 'ret-2'],
            streaming: true,
            attempt: 3,
            name: 'square[0] ✓',
            jobId: 'job-01',
            nodeId: 'node-Ω',
            gpuIds: ['0', '3'],
          },
          { taskId: 'task-β', function: fn('cube'), returnIds: ['ret-3'], attempt: 1 },
          {
            taskId: 'task-actor-create',
            function: fn('Counter'),
            returnIds: ['ret-4'],
            actorCreation: actorSpec,
            actorId: 'actor-1',
            method: 'increment ✓',
            concurrencyGroup: 'io',
            scheduling: { kind: 'PLACEMENT_GROUP', placementGroupId: 'pg-ü', bundleIndex: -1, captureChildTasks: true, nodeId: 'node-Ω', soft: true },
            xlang: true,
          },
        ],
      },
    },
  ],
  [
    'task_results',
    {
      taskResults: {
        results: [
          {
            taskId: 'task-α',
            attempt: 2,
            status: 'TASK_STATUS_ERROR',
            returns: [{ ...inlineObj('err-1', 1, 0), encoding: 'ENCODING_ERROR' }],
            numItems: 7,
            errorName: 'ZeroDivisionError ✗',
          },
          { taskId: 'task-β', attempt: 1, status: 'TASK_STATUS_OK', returns: [shmObj('ret-3')] },
          { taskId: 'task-γ', status: 'TASK_STATUS_CANCELLED' },
        ],
      },
    },
  ],
  [
    'submit_tasks',
    {
      submitTasks: {
        tasks: [
          {
            taskId: 'task-δ',
            function: fn('train'),
            args: [{ value: inlineObj('arg-v', 0, 5) }, { ref: 'obj-ref-ζ' }],
            resources: [
              { name: 'CPU', units: '10000' },
              { name: 'GPU', units: '42949672960000' },
              { name: 'accelerator_type:H200 ✓', units: '-1' },
            ],
            numReturns: 2,
            streaming: true,
            maxRetries: -1,
            retryExceptions: true,
            retryExceptionNames: ['ValueError', 'KeyError'],
            returnIds: ['task-δ-r0', 'task-δ-r1'],
            name: 'train(δ)',
            jobId: 'job-02',
            parentTaskId: 'task-parent-η',
            runtimeEnvJson: '{"envVars":{"GREETING":"grüß dich"},"pip":{"packages":["emoji==2.14.1"],"pipCheck":false}}',
            callerSeq: 4000000000,
          },
          { taskId: 'task-ε', function: fn('eval'), args: [{ value: spillObj('arg-s') }], maxRetries: 5 },
          {
            taskId: 'task-ctor',
            function: fn('Counter'),
            returnIds: ['r'],
            actorCreation: actorSpec,
            scheduling: {
              kind: 'NODE_LABEL',
              spillOnUnavailable: true,
              failOnUnavailable: true,
              hardLabels: [{ key: 'zone', op: 'in', values: ['a', 'zürich'] }],
              softLabels: [{ key: 'accelerator', op: 'exists' }],
            },
          },
          {
            taskId: 'task-call',
            function: fn('Counter'),
            actorId: 'actor-😀',
            method: 'get_counter',
            concurrencyGroup: 'compute',
            scheduling: { kind: 'PLACEMENT_GROUP', placementGroupId: 'pg-ü', bundleIndex: -1, captureChildTasks: true, nodeId: 'node-Ω', soft: true },
            xlang: true,
          },
        ],
      },
    },
  ],
  ['subscribe_objects', { subscribeObjects: { objectIds: ['obj-1', 'obj-ü', 'obj-🚀'] } }],
  ['subscribe_objects_locations_only', { subscribeObjects: { objectIds: ['obj-1'], locationsOnly: true } }],
  ['objects_ready', { objectsReady: { objects: [inlineObj('obj-1', 0, 0), shmObj('obj-2'), spillObj('obj-3')] } }],
  ['put_objects', { putObjects: { objects: [inlineObj('put-1', 3, 64), shmObj('put-2')] } }],
  ['alloc_request', { allocRequest: { requestId: '4294967311', size: '6442450944' } }],
  [
    'alloc_reply',
    {
      allocReply: {
        requestId: '4294967311',
        slice: { offset: '4294967424', length: '6442450944' },
        error: 'store full: 6 GiB requested, spilling off ✗',
      },
    },
  ],
  ['ref_updates', { refUpdates: { add: ['a1', 'a2-ü'], remove: ['r1'], pin: ['p1', 'p2', 'p3-🚀'], unpin: ['u1'] } }],
  ['cancel_task', { cancelTask: { taskId: 'task-ω', force: true } }],
  [
    'generator_items',
    {
      generatorItems: {
        items: [
          { taskId: 'gen-1', index: 4294967295, item: inlineObj('gen-1-item-0', 0, 0) },
          { taskId: 'gen-1', index: 1, item: shmObj('gen-1-item-1') },
        ],
      },
    },
  ],
  ['shutdown', { shutdown: { reason: 'driver exited — goodbye 👋' } }],
  ['error', { error: { code: 'ERROR_CODE_VERSION_MISMATCH', message: 'peer speaks protocol version 2, this is 1' } }],
  ['error_auth', { error: { code: 'ERROR_CODE_AUTH_FAILED', message: 'wrong or missing cluster token' } }],
  ['error_too_large', { error: { code: 'ERROR_CODE_TOO_LARGE', message: 'frame 1 is too large' } }],
  ['cancel_request', { cancelRequest: { objectId: 'obj-ж', force: true } }],
  ['get_actor_request', { getActorRequest: { requestId: '4294967297', name: 'scheduler ✓', namespace: 'head' } }],
  [
    'get_actor_reply',
    {
      getActorReply: { requestId: '7', actorId: 'actor-1', className: 'vLLMScheduler', methods: ['schedule'], error: 'no actor named "x" in namespace "head"' },
    },
  ],
  [
    'placement_group_request',
    {
      placementGroupRequest: {
        requestId: '4294967299',
        placementGroupId: 'pg-ü',
        bundles: [
          {
            resources: [
              { name: 'GPU', units: '10000' },
              { name: 'CPU', units: '20000' },
            ],
          },
          { resources: [{ name: 'custom ✓', units: '5' }] },
        ],
        strategy: 'STRICT_SPREAD',
        name: 'engines',
        detached: true,
        remove: true,
        noWait: true,
      },
    },
  ],
  [
    'generate_request',
    {
      generateRequest: {
        requestId: 'req-ü',
        prompt: 'Hello, my name is ✓',
        promptTokenIds: [1, 4294967295],
        messages: [{ role: 'user', content: 'Hi 👋' }],
        params: { temperature: 0.8, topP: 0.95, topK: 40, maxTokens: 128, stop: ['\n\n', '。'], seed: '4294967297', n: 2, logprobs: 5, ignoreEos: true },
      },
    },
  ],
  [
    'generate_deltas',
    {
      generateDeltas: {
        deltas: [
          {
            requestId: 'req-ü',
            index: 1,
            text: ' wörld',
            tokenIds: [17, 4294967295],
            finishReason: 'length',
            promptTokens: 5,
            completionTokens: 128,
            logprobs: [-0.5, -1.25],
            tokens: [' w', 'örld'],
            topLogprobs: [
              { tokenIds: [17, 3], logprobs: [-0.5, -1.5], tokens: [' w', ' x'] },
              { tokenIds: [4294967295], logprobs: [-1.25], tokens: ['örld'] },
            ],
          },
          { requestId: 'req-2', text: '!' },
        ],
      },
    },
  ],
  [
    'generate_error',
    { generateError: { requestId: 'req-3', code: 'prompt_too_long', message: 'prompt has 5000 tokens; the limit is 2048', field: 'prompt', limit: '2048' } },
  ],
  ['abort_generate', { abortGenerate: { requestIds: ['req-ü', 'req-2'] } }],
  ['engine_stats_request', { engineStatsRequest: { requestId: '4294967296' } }],
  [
    'engine_stats',
    {
      engineStats: {
        requestId: '9',
        waiting: 3,
        running: 7,
        kvCacheUsage: 0.25,
        model: '/models/tiny-llama ✓',
        maxModelLen: 2048,
        ready: true,
        backend: 'transformers',
      },
    },
  ],
  ['kill_actor', { killActor: { actorId: 'actor-ß', noRestart: true, requestId: '4294967298' } }],
  ['heartbeat', { heartbeat: { seq: '12884901888', goodbye: true } }],
  ['object_chunk', { objectChunk: { objectId: 'obj-χ', offset: '8388608', total: '268435456', crc32: 4294967295, header: shmObj('obj-χ') } }],
  [
    'object_locations',
    {
      objectLocations: {
        objects: [{ header: { objectId: 'obj-λ', encoding: 'ENCODING_RAW', rawKind: 'Buffer', size: '268435456' }, nodeIds: ['node-b', 'node-ü'] }],
        ownerNode: 'node-a',
      },
    },
  ],
  ['pull_object', { pullObject: { objectId: 'obj-λ', offset: '8589934592', length: '8388608' } }],
  ['pull_failed', { pullFailed: { objectId: 'obj-λ', reason: 'node has no copy of obj-λ' } }],
  ['data_plane_open', { dataPlaneOpen: { nonce: Buffer.alloc(32, 0xa5).toString('base64') } }],
  [
    'data_plane_opened',
    { dataPlaneOpened: { nonce: Buffer.alloc(32, 0x5a).toString('base64'), session: 3735928559, port: 41234, error: 'node-ü has no data plane' } },
  ],
  [
    'register_node',
    { registerNode: { node: NODE_INFO, authProof: 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=', authTime: '1795910400123', authNonce: 'n-1' } },
  ],
  [
    'node_heartbeat',
    {
      nodeHeartbeat: {
        nodeId: 'node-ü',
        available: [{ name: 'GPU', units: '5000' }],
        seq: '4294967297',
        gpuFree: [10000, 0, 4294967295],
        resourcesChanged: true,
        tableVersion: '4294967298',
        wantFullTable: true,
      },
    },
  ],
  [
    'node_table',
    {
      nodeTable: {
        nodes: [NODE_INFO, { nodeId: 'node-2' }],
        gpuFree: [{ units: [10000, 2500] }, {}],
        version: '9',
        baseVersion: '7',
        full: true,
        epoch: 'gcs-é1',
      },
    },
  ],
  [
    'node_table_delta',
    {
      nodeTable: {
        version: '10',
        baseVersion: '9',
        resources: [{ nodeId: 'node-3', available: [{ name: 'CPU', units: '20000' }], gpuFree: [5000, 0] }, { nodeId: 'node-4' }],
        epoch: 'gcs-é1',
      },
    },
  ],
  // Control plane: one vector per call and per result kind (every field of every message set somewhere).
  [
    'gcs_request_actor_register',
    {
      gcsRequest: {
        requestId: '4294967297',
        actorRegister: {
          actorId: 'actor-ß',
          name: 'scheduler',
          namespace: 'head ✓',
          className: 'Scheduler',
          methods: ['tick', 'stop'],
          module: 'file:///home/ü/app/actors.mjs',
          key: 'Scheduler#0',
          ownerNodeId: 'node-ü',
          hostNodeId: 'node-2',
          status: 'ACTOR_STATUS_ALIVE',
          pid: 4242,
          numRestarts: 2,
          detached: true,
          deathCause: 'crashed: exit code 1',
          version: 3,
          maxTaskRetries: -1,
        },
      },
    },
  ],
  [
    'gcs_request_actor_update',
    {
      gcsRequest: {
        requestId: '2',
        actorUpdate: { actorId: 'actor-ß', status: 'ACTOR_STATUS_DEAD', hostNodeId: 'node-2', pid: 0, numRestarts: 3, deathCause: 'killed: ray.kill' },
      },
    },
  ],
  ['gcs_request_actor_lookup', { gcsRequest: { requestId: '3', actorLookup: { actorId: 'actor-ß', name: 'scheduler', namespace: 'head ✓' } } }],
  ['gcs_request_list_actors', { gcsRequest: { requestId: '4', listActors: {} } }],
  ['gcs_request_list_nodes', { gcsRequest: { requestId: '5', listNodes: {} } }],
  ['gcs_request_kv_put', { gcsRequest: { requestId: '6', kvPut: { key: 'pkg:ab12', value: 'AAEC/w==', overwrite: true } } }],
  ['gcs_request_kv_get', { gcsRequest: { requestId: '7', kvGet: { key: 'pkg:ab12' } } }],
  ['gcs_request_kv_del', { gcsRequest: { requestId: '8', kvDel: { key: 'pkg:ab12' } } }],
  ['gcs_request_kv_keys', { gcsRequest: { requestId: '9', kvKeys: { key: 'pkg:' } } }],
  ['gcs_request_state_gather', { gcsRequest: { requestId: '10', stateGather: { what: 'placement_groups' } } }],
  ['gcs_request_job_end', { gcsRequest: { requestId: '11', jobEnd: { jobId: 'job-7' } } }],
  [
    'gcs_request_cluster_entry',
    {
      gcsRequest: { requestId: '1', clusterEntry: { authProof: 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=', authTime: '1795910400123', authNonce: 'n-2' } },
    },
  ],
  ['gcs_request_cluster_dashboard', { gcsRequest: { requestId: '1', clusterDashboard: { authProof: 'AQID', authTime: '1795910400124', authNonce: 'n-3' } } }],
  ['gcs_request_list_jobs', { gcsRequest: { requestId: '12', listJobs: {} } }],
  ['gcs_request_state_snapshot', { gcsRequest: { requestId: '13', stateSnapshot: { what: 'all' } } }],
  ['gcs_request_state_query', { gcsRequest: { requestId: '14', stateQuery: { what: 'cluster_resources' } } }],
  ['gcs_response_ok', { gcsResponse: { requestId: '4294967297', ok: true } }],
  ['gcs_response_ok_false', { gcsResponse: { requestId: '2', ok: false } }],
  [
    'gcs_response_actors',
    { gcsResponse: { requestId: '3', actors: { actors: [{ actorId: 'actor-ß', className: 'Scheduler', status: 'ACTOR_STATUS_RESTARTING' }] } } },
  ],
  ['gcs_response_nodes', { gcsResponse: { requestId: '5', nodes: { nodes: [NODE_INFO] } } }],
  ['gcs_response_added', { gcsResponse: { requestId: '6', added: true } }],
  ['gcs_response_value', { gcsResponse: { requestId: '7', value: { value: 'AAEC/w==' } } }],
  ['gcs_response_no_value', { gcsResponse: { requestId: '7', value: {} } }],
  ['gcs_response_deleted', { gcsResponse: { requestId: '8', deleted: true } }],
  ['gcs_response_keys', { gcsResponse: { requestId: '9', keys: { keys: ['pkg:ab12', 'pkg:ü'] } } }],
  [
    'gcs_response_state',
    { gcsResponse: { requestId: '10', state: { json: ['{"placement_groups":[]}', '{"placement_groups":[{"placementGroupId":"pg-1"}]}'] } } },
  ],
  ['gcs_response_dashboard_url', { gcsResponse: { requestId: '1', dashboardUrl: 'http://10.0.0.1:8265' } }],
  [
    'gcs_response_error',
    {
      gcsResponse: {
        requestId: '3',
        error: { code: 'ERROR_CODE_CALL_FAILED', message: 'the actor name "scheduler" is already taken in namespace "head ✓" (actor a-1)' },
      },
    },
  ],
  ['worker_blocked', { workerBlocked: { blocked: true, taskId: 'task-ψ', returnedTaskIds: ['t-1', 't-2 ✓'] } }],
];

const out = vectors.map(([name, body]) => {
  const message = { version: V, ...body };
  const hex = Buffer.from(E.encode(E.fromObject(message)).finish()).toString('hex');
  // The JSON we store is what the decoder gives back, so a field the encoder dropped shows up.
  const back = E.toObject(E.decode(Buffer.from(hex, 'hex')), { longs: String, enums: String, bytes: String });
  if (JSON.stringify(back) !== JSON.stringify(message)) {
    throw new Error(`vector ${name} does not round-trip:\n${JSON.stringify(message)}\n${JSON.stringify(back)}`);
  }
  return { name, message, hex };
});

const file = join(pkgDir, 'test-vectors', 'golden.json');
writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
process.stdout.write(`wrote ${out.length} vectors to ${file}\n`);

// ErrorInfo: the bytes of error objects (ENCODING_ERROR), not an Envelope body. Same checks, own file
// (test-vectors/error-info.json); python/tests/test_client.py also reads these bytes as error objects.
const EI = tsray.v1.ErrorInfo;
const tsStack = (name, msg, fn) => `${name}: ${msg}\n    at ${fn} (file:///home/ü/app/tasks.mjs:12:11)\n    at run (file:///home/ü/app/worker.mjs:40:5)`;
const pyTrace = (name, msg, fn) =>
  `Traceback (most recent call last):\n  File "/home/ü/app/tasks.py", line 7, in ${fn}\n    raise ${name}(${JSON.stringify(msg)})\n${name}: ${msg}\n`;
const errorVectors = [
  [
    'task_error_typescript',
    {
      type: 'TaskError',
      name: 'RangeError',
      message: 'index 7 out of range ✓',
      stack: tsStack('RangeError', 'index 7 out of range ✓', 'pick'),
      language: 'typescript',
      cause: {
        type: 'TaskError',
        name: 'TypeError',
        message: 'not a list',
        stack: tsStack('TypeError', 'not a list', 'load'),
        language: 'typescript',
        cause: {
          type: 'TaskError',
          name: 'Error',
          message: 'disk gone',
          stack: tsStack('Error', 'disk gone', 'read'),
          language: 'typescript',
          task: { taskName: 'pick', pid: 4242 },
        },
        task: { taskName: 'pick', pid: 4242 },
      },
      task: {
        taskName: 'pick ✓',
        pid: 4242,
        code: 'E_RANGE',
        props: Buffer.from([0x81, 0xa7, ...Buffer.from('retries'), 0x03]).toString('base64'), // msgpack {retries: 3}
        upstream: {
          type: 'TaskError',
          name: 'Error',
          message: 'root',
          stack: tsStack('Error', 'root', 'g'),
          language: 'typescript',
          task: { taskName: 'g', pid: 1234 },
        },
      },
    },
  ],
  [
    'task_error_python',
    {
      type: 'TaskError',
      name: 'ValueError',
      message: 'bad value',
      stack: pyTrace('ValueError', 'bad value', 'parse'),
      language: 'python',
      cause: {
        type: 'TaskError',
        name: 'KeyError',
        message: "'k'",
        stack: pyTrace('KeyError', 'k', 'parse'),
        language: 'python',
        task: { taskName: 'parse', pid: 77 },
      },
      task: { taskName: 'parse', pid: 77 },
    },
  ],
  [
    'worker_crashed',
    {
      type: 'WorkerCrashedError',
      name: 'WorkerCrashedError',
      language: 'typescript',
      workerCrash: { taskName: 'crash ✓', detail: 'signal SIGKILL', attempts: 4 },
    },
  ],
  ['task_cancelled', { type: 'TaskCancelledError', name: 'TaskCancelledError', language: 'typescript', cancel: { taskName: 'slow', forced: true } }],
  [
    'object_store_full',
    {
      type: 'ObjectStoreFullError',
      name: 'ObjectStoreFullError',
      language: 'typescript',
      storeFull: { requested: '8589934592', capacity: '4294967296', used: '4294967297' },
    },
  ],
  ['object_lost', { type: 'ObjectLostError', name: 'ObjectLostError', language: 'typescript', objectLost: { objectId: 'obj-ü', reason: 'its node died' } }],
  [
    'actor_died',
    {
      type: 'ActorDiedError',
      name: 'ActorDiedError',
      language: 'typescript',
      cause: {
        type: 'TaskError',
        name: 'RangeError',
        message: 'bad start',
        stack: tsStack('RangeError', 'bad start', 'constructor'),
        language: 'typescript',
        task: { taskName: 'Counter.constructor', pid: 99 },
      },
      actorDeath: { actorId: 'a1', className: 'Counter ✓', reason: 'constructor', detail: 'its constructor threw RangeError: bad start' },
    },
  ],
  [
    'runtime_env_setup',
    {
      type: 'RuntimeEnvSetupError',
      name: 'RuntimeEnvSetupError',
      message: 'pip install failed',
      language: 'typescript',
      runtimeEnv: { field: 'pip', output: 'ERROR: No matching distribution found for nope==9', logFile: '/tmp/tsray/session-1/logs/runtime_env-ü.log' },
    },
  ],
  [
    'other',
    {
      type: 'Other',
      name: 'SerializationError',
      message: 'cannot serialize function f',
      stack: 'SerializationError: cannot serialize function f',
      language: 'typescript',
    },
  ],
];
const errorOut = errorVectors.map(([name, message]) => {
  const hex = Buffer.from(EI.encode(EI.fromObject(message)).finish()).toString('hex');
  const back = EI.toObject(EI.decode(Buffer.from(hex, 'hex')), { longs: String, enums: String, bytes: String });
  if (JSON.stringify(back) !== JSON.stringify(message)) {
    throw new Error(`error vector ${name} does not round-trip:\n${JSON.stringify(message)}\n${JSON.stringify(back)}`);
  }
  return { name, message, hex };
});
const errorFile = join(pkgDir, 'test-vectors', 'error-info.json');
writeFileSync(errorFile, `${JSON.stringify(errorOut, null, 2)}\n`);
process.stdout.write(`wrote ${errorOut.length} vectors to ${errorFile}\n`);
