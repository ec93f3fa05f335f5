// verify, render side: render the environment as it will be deployed and prove that every image
// its pods pull is in the environment's registry and is, by the loader's mapping (the
// environment's registry.scheme unless --scheme says otherwise), an image of the committed list.
// Knob-less images (a rule says no value can move them) are warnings.
import { join, relative } from 'node:path';
import type { Environment } from '../config/index.ts';
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
import { siteReference, type NamingScheme } from '../oci/naming.ts';
import { formatImageReference, normalizeImageReference, type ImageReference } from '../oci/reference.ts';
import { globToRegExp } from '../images/rules.ts';

export interface VerifyRenderOptions extends StageOptions {
  env: string;
  /** the lock to check against (default: <stack>/imagelists/<env>.lock.json) */
  lock?: string;
  /** how the loader named images in the registry (default: the environment's registry.scheme) */
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

export interface ExcludedImage {
  reference: string;
  /** `environments/x.yaml: releases.r.excludeImages[i] "glob"` */
  by: string;
  why: Origin[];
}

interface EnvironmentExclude {
  where: string;
  test(ref: ImageReference): boolean;
}

const hasHost = (glob: string) => {
  const first = glob.split('/')[0] ?? '';
  return glob.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
};

/**
 * excludeImages globs of every release. They name upstream references; a deployed reference is
 * the same image under the site registry, so a glob with a host also matches it host-less.
 */
function environmentExcludes(env: Environment): EnvironmentExclude[] {
  const out: EnvironmentExclude[] = [];
  for (const [name, rel] of Object.entries(env.releases)) {
    rel.excludeImages.forEach((glob, i) => {
      const full = globToRegExp(glob);
      const pathOnly = hasHost(glob) ? globToRegExp(glob.slice(glob.indexOf('/') + 1)) : undefined;
      out.push({
        where: `${relative(process.cwd(), env.file) || env.file}: releases.${name}.excludeImages[${i}] "${glob}"`,
        test: (ref) => {
          const formatted = formatImageReference(ref);
          return full.test(formatted) || (pathOnly?.test(formatted.slice(ref.registry.length + 1)) ?? false);
        },
      });
    });
  }
  return out;
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
  /** the naming scheme the check mapped listed images with */
  scheme: NamingScheme;
  lock: string;
  /** images the deployed render pulls */
  checked: number;
  offenders: Offender[];
  knobless: KnoblessImage[];
  /** images the environment's excludeImages leave out of the list: warnings, not escapes */
  excluded: ExcludedImage[];
  /** with a registry to check: what it answered for each image */
  registryChecks?: RegistryCheck[];
}

export async function verifyRenderedImages(opts: VerifyRenderOptions): Promise<VerifyRenderResult> {
  const env = await loadEnvironment(opts.stackDir, opts.env, opts.overlays ? { overlays: opts.overlays } : {});
  const lockFile = opts.lock ?? lockPath(join(opts.stackDir, 'imagelists'), env.name);
  const lock = await readImageLock(lockFile);
  const registry = env.registry?.host ?? null;
  const scheme = opts.scheme ?? env.registry?.scheme ?? 'host-swap';
  if (env.registry && opts.scheme && opts.scheme !== env.registry.scheme) {
    opts.onEvent?.({
      type: 'warn',
      message: `--scheme ${opts.scheme}: ${env.name}'s values name images by its registry.scheme ${env.registry.scheme} (${relative(process.cwd(), env.file) || env.file}); images rendered from them will not map back to the list under ${opts.scheme}`,
    });
  }
  // what the loader will push each listed image as
  const expected = new Map<string, string>();
  const digests = new Map(lock.images.filter((e) => e.digest).map((e) => [e.reference, e.digest!]));
  for (const e of lock.images) {
    const ref = normalizeImageReference(e.reference, lockFile);
    const site = registry ? siteReference(ref, registry, scheme) : ref;
    expected.set(formatImageReference(site), e.reference);
  }
  const deployed = opts.manifests?.length
    ? await manifestImages(env.name, opts.manifests, opts)
    : await renderDeployedImages(env, {
        ...opts,
        ...(lock.knobs ? { inferredKnobs: lock.knobs } : {}),
        ...(lock.knobValues ? { inferredValues: lock.knobValues } : {}),
      });
  // images the lock says no knob moves (inferred at `sealift images`) stay upstream: warnings, like rule ones
  const lockKnobless = new Map(lock.images.filter((e) => e.knobless).map((e) => [e.reference, e.knobless!]));
  const offenders: Offender[] = [];
  const knobless: KnoblessImage[] = [];
  const inRegistry: RegistryCheckTarget[] = [];
  const excludes = environmentExcludes(env);
  const excluded: ExcludedImage[] = [];
  for (const d of deployed.images) {
    const ref = normalizeImageReference(d.reference);
    const where = d.why.map(formatOrigin).join('; ');
    const exclusion = expected.has(d.reference) ? undefined : excludes.find((x) => x.test(ref));
    if (exclusion) {
      // the environment says the site never pulls it: not carried, not an escape
      excluded.push({ reference: d.reference, by: exclusion.where, why: d.why });
      continue;
    }
    if (registry && ref.registry !== registry) {
      const marked = d.knobless ?? lockKnobless.get(d.reference);
      if (marked) {
        knobless.push({
          reference: d.reference,
          rule: marked.rule,
          description: marked.description,
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
    scheme,
    lock: lockFile,
    checked: deployed.images.length,
    offenders,
    knobless,
    excluded,
    ...(registryChecks ? { registryChecks } : {}),
  };
}
