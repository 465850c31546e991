/**
 * TLS of the head's HTTP API when it listens beyond loopback: the user's certificate
 * (`--dashboard-cert`/`--dashboard-key`), else a self-signed one generated at start (`selfsigned`,
 * EC P-256) whose SHA-256 fingerprint is printed and stored in the session; clients pin that
 * fingerprint (`tsray job --dashboard-fingerprint`, `TSRAY_DASHBOARD_FINGERPRINT`, or the local
 * session's ready file). A pinned client fetches the server's certificate first, compares the
 * fingerprint, and only then sends a request (its API key) over a connection verified against it.
 * @module
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { generate } from 'selfsigned';
import { TlsFingerprintError } from './errors.js';

/** A server certificate and its key (PEM), and the certificate's SHA-256 fingerprint (`AA:BB:…`). */
export interface ApiTls {
  cert: string;
  key: string;
  fingerprint: string;
}

/** `AA:BB:…` (upper case, colons), the form node's `fingerprint256` and `openssl x509 -fingerprint -sha256` print. */
export function normalizeFingerprint(f: string): string {
  const hex = f
    .replace(/^sha256[:=]/i, '')
    .replace(/[^0-9a-f]/gi, '')
    .toUpperCase();
  return hex.match(/../g)?.join(':') ?? '';
}

/** The SHA-256 fingerprint of a PEM certificate. */
export function certFingerprint(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

/** The user's certificate and key files. */
export function loadTls(certFile: string, keyFile: string): ApiTls {
  const cert = readFileSync(certFile, 'utf8');
  return { cert, key: readFileSync(keyFile, 'utf8'), fingerprint: certFingerprint(cert) };
}

/** A new self-signed certificate for `hosts` (IP addresses or names), valid for a year. */
export async function selfSignedTls(hosts: readonly string[]): Promise<ApiTls> {
  const altNames = [...new Set(hosts)].map((h) => (/^[\d.]+$|:/.test(h) ? { type: 7 as const, ip: h } : { type: 2 as const, value: h }));
  const pems = await generate([{ name: 'commonName', value: 'tsray head' }], {
    keyType: 'ec',
    curve: 'P-256',
    notAfterDate: new Date(Date.now() + 365 * 24 * 3600 * 1000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames },
    ],
  });
  return { cert: pems.cert, key: pems.private, fingerprint: certFingerprint(pems.cert) };
}

/** The certificate a TLS server at `url` presents (nothing is sent but the handshake). */
export function fetchServerCertificate(url: URL, timeoutMs: number): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 443), rejectUnauthorized: false, servername: '' });
    const timer = setTimeout(() => sock.destroy(new Error(`no TLS handshake within ${timeoutMs} ms`)), timeoutMs);
    sock.once('secureConnect', () => {
      clearTimeout(timer);
      const cert = sock.getPeerCertificate(true);
      sock.destroy();
      resolve(cert);
    });
    sock.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/**
 * TLS options that accept exactly the certificate whose fingerprint is `pin`: the server's
 * certificate is fetched, compared (TlsFingerprintError when it differs), then trusted as the only
 * CA of the request's connection, whose certificate must have the same fingerprint again (the
 * host name is not checked: the pin names the certificate).
 */
export async function pinnedTlsOptions(url: URL, pin: string, timeoutMs: number): Promise<ConnectionOptions> {
  const want = normalizeFingerprint(pin);
  const cert = await fetchServerCertificate(url, timeoutMs);
  if (cert.fingerprint256 !== want) throw new TlsFingerprintError(url.origin, want, cert.fingerprint256);
  const pem = `-----BEGIN CERTIFICATE-----\n${cert.raw
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')}\n-----END CERTIFICATE-----\n`;
  return {
    ca: pem,
    checkServerIdentity: (_host, peer) => (peer.fingerprint256 === want ? undefined : new TlsFingerprintError(url.origin, want, peer.fingerprint256)),
  };
}
