// The GCS of the scale bench in its own process, so its CPU and memory are the GCS's alone (a real
// head also runs a node and the jobs API). `node bench/scale/gcs-host.mjs <checkout root> <token>`:
// starts that checkout's GcsServer (so the same bench measures an older tsray too), sends
// {address} over IPC, then answers each 'stats' message with its counters. Bytes are counted at the
// socket (the ROUTER's send queue and receive path, every frame after the routing id), the same way on
// every version; a version with GcsServer.stats() also reports its own per-kind counters.
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

const [root, token] = process.argv.slice(2);
const { GcsServer } = await import(pathToFileURL(join(root, 'packages/cluster/dist/gcs.js')).href);
const gcs = await GcsServer.start({ host: '127.0.0.1', port: 0, token, nodeDeathTimeoutMs: 3000 });

const io = { bytesIn: 0, bytesOut: 0, messagesIn: 0, messagesOut: 0 };
const len = (frames) => frames.reduce((n, f, i) => (i === 0 ? n : n + f.length), 0);
// Private members, read on purpose: the one place every version sends (its Outbox) and receives.
const server = gcs.server;
const outbox = server.outbox;
const send = outbox.send.bind(outbox);
outbox.send = (frames) => {
  io.bytesOut += len(frames);
  io.messagesOut++;
  send(frames);
};
const receive = server.receive.bind(server);
server.receive = (frames) => {
  io.bytesIn += len(frames);
  io.messagesIn++;
  receive(frames);
};

/** When the GCS declared each node dead (ms since the epoch). */
const deaths = {};
gcs.onNodeChange = (n) => {
  if (!n.alive && deaths[n.nodeId] === undefined) deaths[n.nodeId] = Date.now();
};

process.on('message', (m) => {
  if (m === 'stats') {
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    process.send({
      at: Date.now(),
      io: { ...io },
      cpuMs: (cpu.user + cpu.system) / 1000,
      rss: mem.rss,
      heapUsed: mem.heapUsed,
      alive: gcs.nodeInfos().filter((n) => n.alive).length,
      deaths: { ...deaths },
      own: typeof gcs.stats === 'function' ? gcs.stats() : undefined,
    });
  } else if (m && typeof m === 'object' && typeof m.deathTimeoutMs === 'number') {
    // A private field, set on purpose: the task phase runs with a long limit on this overloaded
    // machine (a node busy with a burst can miss heartbeats for seconds), the death phase with 3 s.
    gcs.deathTimeoutMs = m.deathTimeoutMs;
    process.send({ deathTimeoutMs: gcs.deathTimeoutMs });
  } else if (m === 'stop') {
    void gcs.close().then(() => process.exit(0));
  }
});
process.on('disconnect', () => void gcs.close().then(() => process.exit(0)));
process.send({ address: gcs.address });
