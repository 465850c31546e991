/**
 * Receiving side of the raw ZeroMQ baseline of bench/tsray/cluster.bench.ts (a separate process, as a
 * node manager is): binds a PULL socket on tcp loopback and a PUSH socket back to the sender, prints
 * `{"pull":"tcp://…","ack":"tcp://…"}` on stdout, then for every round counts the bytes of the frames
 * it receives and, on an empty frame (end of round), sends back the byte count as ASCII.
 * Exits when stdin closes. With CURVE on (TSRAY_TRANSPORT_CURVE unset or 1, as tsray's tcp sockets) the
 * PULL socket is a CURVE server with a fresh keypair whose public key it prints too (`"serverKey"`), so
 * the baseline pays what tsray's transfers pay.
 *
 * Usage: node bench/tsray/zmq-sink.mjs
 */
import * as zmq from 'zeromq';

const curve = !['0', 'false'].includes((process.env.TSRAY_TRANSPORT_CURVE ?? '').trim().toLowerCase());
const keys = curve ? zmq.curveKeyPair() : undefined;
const pull = new zmq.Pull(keys ? { curveServer: true, curveSecretKey: keys.secretKey } : {});
const ack = new zmq.Push();
await pull.bind('tcp://127.0.0.1:*');
await ack.bind('tcp://127.0.0.1:*');
process.stdout.write(JSON.stringify({ pull: pull.lastEndpoint, ack: ack.lastEndpoint, serverKey: keys?.publicKey }) + '\n');
process.stdin.resume();
process.stdin.on('end', () => {
  pull.close();
  ack.close();
  process.exit(0);
});
let got = 0;
for await (const [frame] of pull) {
  if (frame.length === 0) {
    await ack.send(String(got));
    got = 0;
  } else got += frame.length;
}
