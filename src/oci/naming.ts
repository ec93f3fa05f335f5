// Where an upstream image lives in the site registry: the one naming function every stage uses
// (generate writes the values with it, load and mirror push with it, verify checks with it).
// It works on normalized references only, so `docker.io/busybox`, `busybox` and
// `index.docker.io/library/busybox` are one image with one site name.
//
// host-swap (default):  docker.io/istio/pilot:1.23.2 -> REG/istio/pilot:1.23.2
// scoped:               docker.io/istio/pilot:1.23.2 -> REG/docker.io/istio/pilot:1.23.2
//
// A prefix (a hub a chart appends names to, `docker.io/istio`) is not an image: it is mapped so
// that the prefix of a name maps to the prefix of its site name, which means no `library/`.
import { SealiftError } from '../errors.ts';
import {
  formatImageReference,
  isRegistryHost,
  normalizeReference,
  normalizeRegistry,
  parseImageReference,
  repositoryName,
  type ImageReference,
} from './reference.ts';

export type NamingScheme = 'host-swap' | 'scoped';

export const NAMING_SCHEMES: readonly NamingScheme[] = ['host-swap', 'scoped'];

export function parseNamingScheme(s: string | undefined): NamingScheme {
  if (s === undefined) return 'host-swap';
  if ((NAMING_SCHEMES as readonly string[]).includes(s)) return s as NamingScheme;
  throw new SealiftError('USAGE', `--scheme must be host-swap or scoped, not "${s}"`, {
    hint: 'host-swap: REG/istio/pilot (what the airgap values use by default); scoped: REG/docker.io/istio/pilot.',
  });
}

function checkRegistryHost(targetRegistry: string): void {
  if (!isRegistryHost(targetRegistry)) {
    throw new SealiftError('USAGE', `"${targetRegistry}" is not a registry host[:port]`, {
      hint: 'Give the registry as HOST:PORT without a scheme, e.g. 10.61.3.31:35000.',
    });
  }
}

/**
 * The site name of an image: normalized first (whatever form it was written in), then its
 * repository path under `targetRegistry` (scoped: behind the source host), tag and digest kept.
 */
export function siteReference(
  ref: ImageReference,
  targetRegistry: string,
  scheme: NamingScheme = 'host-swap',
): ImageReference {
  checkRegistryHost(targetRegistry);
  const normalized = normalizeReference(ref);
  const repository = scheme === 'scoped' ? `${normalized.registry}/${normalized.repository}` : normalized.repository;
  return { ...normalized, registry: targetRegistry, repository, original: ref.original };
}

/**
 * The site form of a name prefix (`docker.io/istio`, `gcr.io/knative-releases`, `kserve`): what
 * every image under it maps to minus the rest of its path. The registry is normalized
 * (none or index.docker.io -> docker.io); no `library/` is added, since the prefix is not a name.
 */
export function sitePrefix(
  prefix: string,
  targetRegistry: string,
  scheme: NamingScheme = 'host-swap',
  where?: string,
): string {
  checkRegistryHost(targetRegistry);
  const ref = parseImageReference(prefix, where);
  if (ref.tag !== undefined || ref.digest !== undefined) {
    throw new SealiftError('CONFIG_INVALID', `${where ? `${where}: ` : ''}the prefix "${prefix}" has a tag or digest`, {
      hint: 'A prefix (a hub) names a registry and path only; write a full image without the trailing "/".',
    });
  }
  const registry = normalizeRegistry(ref.registry);
  return `${targetRegistry}/${scheme === 'scoped' ? `${registry}/` : ''}${ref.repository}`;
}

export interface ImageTarget {
  /** the normalized source reference, as the lock lists it */
  source: ImageReference;
  /** where it goes at the site */
  target: ImageReference;
}

/**
 * Maps every source reference to its target name and refuses when two different source
 * repositories would land on one target repository (docker.io/x/y and quay.io/x/y under
 * host-swap): one would silently overwrite the other's tags.
 */
export function planTargets(
  sources: readonly (string | ImageReference)[],
  registry: string,
  scheme: NamingScheme,
): ImageTarget[] {
  const out: ImageTarget[] = [];
  const seen = new Set<string>();
  const owners = new Map<string, string>();
  const clashes: { target: string; sources: string[] }[] = [];
  for (const s of sources) {
    const source = normalizeReference(typeof s === 'string' ? parseImageReference(s) : s);
    const key = formatImageReference(source);
    if (seen.has(key)) continue;
    seen.add(key);
    if (scheme === 'scoped' && source.registry.includes(':')) {
      throw new SealiftError(
        'USAGE',
        `${source.original}: with --scheme scoped the source host becomes a path component, and "${source.registry}" has a port, which a repository name cannot hold`,
        {
          hint: 'Use --scheme host-swap for sources with a port (or name the source without one).',
        },
      );
    }
    const target = siteReference(source, registry, scheme);
    const targetRepo = repositoryName(target);
    const sourceRepo = repositoryName(source);
    const owner = owners.get(targetRepo);
    if (owner === undefined) owners.set(targetRepo, sourceRepo);
    else if (owner !== sourceRepo) {
      const c = clashes.find((x) => x.target === targetRepo);
      if (c) {
        if (!c.sources.includes(sourceRepo)) c.sources.push(sourceRepo);
      } else clashes.push({ target: targetRepo, sources: [owner, sourceRepo] });
    }
    out.push({ source, target });
  }
  if (clashes.length > 0) {
    const lines = clashes.map((c) => `${c.sources.join(' and ')} would both become ${c.target}`);
    throw new SealiftError(
      'USAGE',
      `two source images would land on one name in ${registry} with --scheme ${scheme}:\n  ${lines.join('\n  ')}`,
      {
        hint: `Use --scheme scoped, which keeps the source registry in the path (${registry}/${clashes[0]?.sources[0] ?? 'docker.io/x/y'}), and set the environment's registry scheme to scoped so the generated values follow.`,
        details: { clashes },
      },
    );
  }
  return out;
}
