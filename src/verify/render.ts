// verify, render side: render the environment as it will be deployed and prove that every image
// its pods pull is in the environment's registry and is, by the loader's host-swap mapping, an
// image of the committed list. Knob-less images (a rule says no value can move them) are warnings.
import { join } from 'node:path';
import { loadEnvironment } from '../config/index.ts';
import {
  formatOrigin,
  manifestImages,
  readImageLock,
  renderDeployedImages,
  type StageOptions,
} from '../images/index.ts';
import type { Origin } from '../images/extract.ts';
import { lockPath } from '../images/lock.ts';
import type { RegistryHostConfig } from '../oci/registry.ts';
import { checkRegistry, type RegistryCheck, type RegistryCheckTarget } from './registry.ts';
import {
  formatImageReference,
  normalizeImageReference,
  retagImageReference,
  type NamingScheme,
} from '../images/reference.ts';

export interface VerifyRenderOptions extends StageOptions {
  env: string;
  /** the lock to check against (default: <stack>/imagelists/<env>.lock.json) */
  lock?: string;
  scheme?: NamingScheme;
  /** check these rendered manifest files (e.g. `helmfile -e <env> template` output) instead of rendering */
  manifests?: string[];
  /** also check that every image is in this registry (the environment's, or another address of it) */
  registry?: { host: string } & RegistryHostConfig;
}

export interface Offender {
  reference: string;
  /** outside-registry: not in the environment's registry; not-in-list: there, but no listed image maps to it;
   *  missing / digest-mismatch / registry-error: what the registry (--registry) answered */
  problem: 'outside-registry' | 'not-in-list' | 'missing' | 'digest-mismatch' | 'registry-error';
  why: Origin[];
  /** one line for people */
  message: string;
}

export interface KnoblessImage {
  reference: string;
  rule: string;
  description: string;
  why: Origin[];
}

export interface VerifyRenderResult {
  ok: boolean;
  environment: string;
  registry: string | null;
  lock: string;
  /** images the deployed render pulls */
  checked: number;
  offenders: Offender[];
  knobless: KnoblessImage[];
  /** with a registry to check: what it answered for each image */
  registryChecks?: RegistryCheck[];
}

export async function verifyRenderedImages(opts: VerifyRenderOptions): Promise<VerifyRenderResult> {
  const env = await loadEnvironment(opts.stackDir, opts.env, opts.overlays ? { overlays: opts.overlays } : {});
  const lockFile = opts.lock ?? lockPath(join(opts.stackDir, 'imagelists'), env.name);
  const lock = await readImageLock(lockFile);
  const registry = env.registry?.host ?? null;
  const scheme = opts.scheme ?? 'host-swap';
  // what the loader will push each listed image as
  const expected = new Map<string, string>();
  const digests = new Map(lock.images.filter((e) => e.digest).map((e) => [e.reference, e.digest!]));
  for (const e of lock.images) {
    const ref = normalizeImageReference(e.reference, lockFile);
    const site = registry ? retagImageReference(ref, registry, scheme) : ref;
    expected.set(formatImageReference(site), e.reference);
  }
  const deployed = opts.manifests?.length
    ? await manifestImages(env.name, opts.manifests, opts)
    : await renderDeployedImages(env, opts);
  const offenders: Offender[] = [];
  const knobless: KnoblessImage[] = [];
  const inRegistry: RegistryCheckTarget[] = [];
  for (const d of deployed.images) {
    const ref = normalizeImageReference(d.reference);
    const where = d.why.map(formatOrigin).join('; ');
    if (registry && ref.registry !== registry) {
      if (d.knobless) {
        knobless.push({
          reference: d.reference,
          rule: d.knobless.rule,
          description: d.knobless.description,
          why: d.why,
        });
        continue;
      }
      offenders.push({
        reference: d.reference,
        problem: 'outside-registry',
        why: d.why,
        message: `${d.reference} is pulled from ${ref.registry}, not ${registry} (${where})`,
      });
    } else if (!expected.has(d.reference)) {
      offenders.push({
        reference: d.reference,
        problem: 'not-in-list',
        why: d.why,
        message: `${d.reference} maps back to no image in ${lockFile} (${where})`,
      });
    } else {
      const digest = digests.get(expected.get(d.reference)!);
      inRegistry.push({ reference: d.reference, ref, ...(digest ? { expectedDigest: digest } : {}) });
    }
  }
  let registryChecks: RegistryCheck[] | undefined;
  if (opts.registry) {
    const { host, ...config } = opts.registry;
    registryChecks = await checkRegistry(host, config, inRegistry, opts);
    for (const c of registryChecks.filter((x) => x.status !== 'present')) {
      const why = deployed.images.find((d) => d.reference === c.reference)?.why ?? [];
      const problem =
        c.status === 'missing' ? 'missing' : c.status === 'mismatch' ? 'digest-mismatch' : 'registry-error';
      offenders.push({
        reference: c.reference,
        problem,
        why,
        message: `${c.message ?? c.status} (${why.map(formatOrigin).join('; ')})`,
      });
    }
  }
  return {
    ok: offenders.length === 0,
    environment: env.name,
    registry,
    lock: lockFile,
    checked: deployed.images.length,
    offenders,
    knobless,
    ...(registryChecks ? { registryChecks } : {}),
  };
}
