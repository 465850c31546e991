/**
 * The sending side of code shipping: before a node forwards a task whose function lives in a project
 * folder (`FunctionRef.codeRoot`), it packs that folder by content hash and publishes the archive in
 * the GCS KV (`pkg:<hash>`), so a node without the folder can fetch it (runtime-env's `jobCode`).
 * Per job the folder is only fingerprinted (a listing with sizes, times and inodes: no file is read);
 * it is packed and published again only when the fingerprint changed, so an unchanged project costs
 * one directory walk per job. A folder that cannot be packed (over the size cap, unreadable) is
 * warned about once and the task goes without it: nodes sharing the filesystem still run it.
 * @internal
 */
import { join } from 'node:path';
import { codeFingerprint, type JobCode, packJobCode } from '@tsray/runtime-env';
import { logger } from '../logger.js';

/** What the publisher needs from its node. */
export interface JobCodePublisherHost {
  /** The node's package cache folder (`<runtime resources>/archives`). */
  archivesDir(): string;
  /** Put an archive into the cluster (GCS KV `pkg:<hash>`), once per hash. */
  publish(hash: string, archivePath: string): Promise<void>;
}

/** The latest published state of one project folder. */
interface Published {
  fingerprint: string;
  code: Promise<JobCode>;
}

/** Packs and publishes job code folders, once per content change. */
export class JobCodePublisher {
  private readonly latest = new Map<string, Published>();
  private readonly warned = new Set<string>();

  constructor(private readonly host: JobCodePublisherHost) {}

  /** The `jobCode` to send with a task whose module lives under `root`; undefined when the folder cannot be shipped. */
  async codeFor(root: string): Promise<JobCode | undefined> {
    try {
      const fingerprint = await codeFingerprint(root);
      let p = this.latest.get(root);
      if (!p || p.fingerprint !== fingerprint) {
        p = { fingerprint, code: this.packAndPublish(root) };
        this.latest.set(root, p);
        const mine = p;
        p.code.catch(() => {
          if (this.latest.get(root) === mine) this.latest.delete(root);
        });
      }
      return await p.code;
    } catch (err) {
      if (!this.warned.has(root)) {
        this.warned.add(root);
        logger().warn({ root, err: (err as Error).message }, 'job code folder not shipped: nodes without it cannot run its functions');
      }
      return undefined;
    }
  }

  private async packAndPublish(root: string): Promise<JobCode> {
    const started = performance.now();
    const packed = await packJobCode(root, this.host.archivesDir());
    const hash = packed.package.slice('pkg://'.length);
    await this.host.publish(hash, packed.archivePath);
    logger().info({ root, package: hash, bytes: packed.bytes, ms: Math.round(performance.now() - started) }, 'job code packed and published');
    return { root, package: packed.package, sha256: packed.sha256, fingerprint: packed.fingerprint };
  }
}

/** The package cache folder of an agent whose `packagePath(hash)` is `<dir>/<hash>.tar.gz`. */
export function archivesDirOf(packagePath: (hash: string) => string): string {
  return join(packagePath('pkg_00000000'), '..');
}
