#!/usr/bin/env node
// Encode + decode of an ExecuteTasks batch of N small tasks (default 1000), with one inline
// argument each packed by PayloadWriter. Prints microseconds per task. Needs `nx build protocol`.
//   node packages/protocol/bench/encode-decode.mjs [tasksPerBatch] [batches]
import { PayloadWriter, decodeMessage, encodeMessage, payloadBytes } from '../dist/index.js';

const N = Number(process.argv[2] ?? 1000);
const BATCHES = Number(process.argv[3] ?? 300);
const fn = { moduleUrl: 'file:///home/user/app/tasks.mjs', key: 'square#0', name: 'square' };
const argBytes = Array.from({ length: N }, (_, i) => Buffer.from(`arg-bytes-${i}-0123456789abcdef`));

function encodeBatch(batch) {
  const w = new PayloadWriter();
  const tasks = new Array(N);
  for (let i = 0; i < N; i++) {
    const bytes = argBytes[i];
    tasks[i] = {
      taskId: `t-${batch}-${i}-0123456789abcdef`,
      function: fn,
      args: [{ objectId: `o-${batch}-${i}-0123456789abcdef`, encoding: 1, inline: w.add(bytes), size: bytes.length }],
      returnIds: [`r-${batch}-${i}-0123456789abcdef`],
      attempt: 1,
      jobId: 'job-01',
      nodeId: 'node-0123456789abcdef',
    };
  }
  return encodeMessage({ executeTasks: { tasks } }, w.finish());
}

function decodeBatch(frames) {
  const { envelope, payloads } = decodeMessage(frames);
  let n = 0;
  for (const t of envelope.executeTasks.tasks) n += payloadBytes(t.args[0].inline, payloads).length + t.taskId.length;
  return n;
}

let sink = 0;
for (let b = 0; b < 50; b++) sink += decodeBatch(encodeBatch(b)); // warm-up
let enc = 0n;
let dec = 0n;
let bytes = 0;
let FRAMES = 0;
for (let b = 0; b < BATCHES; b++) {
  const t0 = process.hrtime.bigint();
  const frames = encodeBatch(b);
  const t1 = process.hrtime.bigint();
  sink += decodeBatch(frames);
  const t2 = process.hrtime.bigint();
  enc += t1 - t0;
  dec += t2 - t1;
  bytes = frames.reduce((s, f) => s + f.length, 0);
  FRAMES = frames.length;
}
const per = (ns) => Number(ns) / 1000 / (BATCHES * N);
console.log(
  `ExecuteTasks x${N} tasks, ${BATCHES} batches: encode ${per(enc).toFixed(2)} µs/task, ` +
    `decode ${per(dec).toFixed(2)} µs/task, total ${per(enc + dec).toFixed(2)} µs/task; ` +
    `${bytes} bytes in ${FRAMES} frames per batch (sink ${sink > 0})`,
);
