// verify, registry side: every image the deployed render pulls from the site registry is there
// (HEAD of its manifest), and where the lock knows the digest, the registry serves that digest.
import pLimit from 'p-limit';
import { isSealiftError, errorMessage } from '../errors.ts';
import type { RunOptions } from '../events.ts';
import { RegistryClient, type RegistryHostConfig } from '../oci/registry.ts';
import type { ImageReference } from '../oci/reference.ts';

export interface RegistryCheckTarget {
  /** the reference as the cluster pulls it */
  reference: string;
  ref: ImageReference;
  /** the digest the lock recorded for its source image, if any */
  expectedDigest?: string;
}

export interface RegistryCheck {
  reference: string;
  status: 'present' | 'missing' | 'mismatch' | 'error';
  digest?: string;
  expected?: string;
  message?: string;
}

/**
 * Looks each reference up in `registry` (which may be another address of the environment's
 * registry, e.g. 127.0.0.1:PORT at the site): same repository path, same tag or digest.
 */
export async function checkRegistry(
  registry: string,
  config: RegistryHostConfig,
  targets: readonly RegistryCheckTarget[],
  opts: RunOptions & { concurrency?: number } = {},
): Promise<RegistryCheck[]> {
  const client = new RegistryClient(registry, {
    hosts: { [registry]: config },
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    retry: { attempts: 3 },
  });
  const limit = pLimit(opts.concurrency ?? 4);
  return Promise.all(
    targets.map((t) =>
      limit(async (): Promise<RegistryCheck> => {
        const selector = t.ref.digest ?? t.ref.tag ?? 'latest';
        try {
          const d = await client.resolve({ repository: t.ref.repository, selector }, opts.signal);
          if (t.expectedDigest && !t.ref.digest && d.digest !== t.expectedDigest) {
            return {
              reference: t.reference,
              status: 'mismatch',
              digest: d.digest,
              expected: t.expectedDigest,
              message: `${registry}/${t.ref.repository}:${selector} is ${d.digest}, the lock says ${t.expectedDigest}`,
            };
          }
          return { reference: t.reference, status: 'present', digest: d.digest };
        } catch (e) {
          if (isSealiftError(e) && e.code === 'NOT_FOUND')
            return {
              reference: t.reference,
              status: 'missing',
              message: `${registry}/${t.ref.repository}:${selector} does not exist`,
            };
          if (isSealiftError(e) && e.code === 'DIGEST_MISMATCH')
            return { reference: t.reference, status: 'mismatch', message: e.message };
          return { reference: t.reference, status: 'error', message: errorMessage(e) };
        }
      }),
    ),
  );
}
