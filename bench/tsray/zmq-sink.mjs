/**
 * Receiving side of the raw ZeroMQ baseline of bench/tsray/cluster.bench.ts (a separate process, as a
 * node manager is): binds a PULL socket on tcp loopback and a PUSH socket back to the sender, prints
 * `{"pull":"tcp://…","ack":"tcp://…"}` on stdout, then for every round counts the bytes of the frames
 * it receives and, on an empty frame (end of round), sends back the byte count as ASCII.
 * Exits when stdin closes. Plain by default (the raw link: tsray's data plane between two nodes on one
 * host's loopback is plain too). `--curve`: the PULL socket is a CURVE server with a fresh keypair whose
 * public key it prints too (`"serverKey"`): what tsray's control links pay.
 *
 * `--sealed`: the other baseline, what tsray's bulk data plane does with ZeroMQ alone: a plain PULL socket,
 * each frame AES-256-GCM sealed by the sender (`[iv ‖ tag][ciphertext]`, a key this process makes and
 * prints as `"key"`) and opened here straight into one preallocated buffer (`gcmOpenInto`, as a node
 * opens a chunk into its arena).
 *
 * Usage: node bench/tsray/zmq-sink.mjs [--sealed | --curve]
 */
import { randomBytes } from 'node:crypto';
import * as zmq from 'zeromq';
import { gcmOpenInto } from '@tsray/object-store';

const sealed = process.argv.includes('--sealed');
const curve = process.argv.includes('--curve');
const keys = curve ? zmq.curveKeyPair() : undefined;
const key = sealed ? randomBytes(32) : undefined;
const pull = new zmq.Pull(keys ? { curveServer: true, curveSecretKey: keys.secretKey } : {});
const ack = new zmq.Push();
await pull.bind('tcp://127.0.0.1:*');
await ack.bind('tcp://127.0.0.1:*');
process.stdout.write(JSON.stringify({ pull: pull.lastEndpoint, ack: ack.lastEndpoint, serverKey: keys?.publicKey, key: key?.toString('hex') }) + '\n');
process.stdin.resume();
process.stdin.on('end', () => {
  pull.close();
  ack.close();
  process.exit(0);
});
let got = 0;
/** Where sealed frames are opened into (grown to the largest round seen). */
let dst = Buffer.alloc(0);
const noAad = Buffer.alloc(0);
for await (const [frame, ciphertext] of pull) {
  if (frame.length === 0) {
    await ack.send(String(got));
    got = 0;
  } else if (key) {
    if (dst.length < got + ciphertext.length) dst = Buffer.concat([dst, Buffer.alloc(got + ciphertext.length - dst.length)]);
    if (!gcmOpenInto(key, frame.subarray(0, 12), noAad, frame.subarray(12, 28), ciphertext, dst.subarray(got, got + ciphertext.length))) {
      process.stderr.write('zmq-sink: a sealed frame did not open\n');
      process.exit(1);
    }
    got += ciphertext.length;
  } else got += frame.length;
}
