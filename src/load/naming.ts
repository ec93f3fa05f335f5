// Where each source image lands at the site, and the containerd configuration that lets nodes
// pull upstream names from there. Pure: data in, data out.
//
// host-swap (default):  docker.io/istio/pilot:1.23.2 -> REG/istio/pilot:1.23.2
// scoped:               docker.io/istio/pilot:1.23.2 -> REG/docker.io/istio/pilot:1.23.2
// This is the same mapping the airgap values use (retagImageReference), so what load pushes is
// what the cluster asks for.
import { SealiftError } from '../errors.ts';
import {
  formatImageReference,
  normalizeImageReference,
  repositoryName,
  retagImageReference,
  type ImageReference,
  type NamingScheme,
} from '../images/reference.ts';

export interface ImageTarget {
  /** the normalized source reference, as the lock lists it */
  source: ImageReference;
  /** where it goes at the site */
  target: ImageReference;
}

export const NAMING_SCHEMES: readonly NamingScheme[] = ['host-swap', 'scoped'];

export function parseNamingScheme(s: string | undefined): NamingScheme {
  if (s === undefined) return 'host-swap';
  if ((NAMING_SCHEMES as readonly string[]).includes(s)) return s as NamingScheme;
  throw new SealiftError('USAGE', `--scheme must be host-swap or scoped, not "${s}"`, {
    hint: 'host-swap: REG/istio/pilot (what the airgap values use by default); scoped: REG/docker.io/istio/pilot.',
  });
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
    const source =
      typeof s === 'string' ? normalizeImageReference(s) : s.registry ? s : normalizeImageReference(s.original);
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
    const target = retagImageReference(source, registry, scheme);
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

export interface HostsTomlOptions {
  /** the site registry host:port */
  registry: string;
  scheme: NamingScheme;
  /** how the site registry is reached */
  transport: 'plain-http' | 'https' | 'insecure';
  /** CA file path as it will be on the nodes (https) */
  caFile?: string;
}

/** The registry host a runtime asks for an upstream name: containerd's directory name for it. */
export function upstreamHosts(sources: readonly ImageReference[]): string[] {
  return [...new Set(sources.map((s) => s.registry))].sort();
}

function tomlString(s: string): string {
  return JSON.stringify(s);
}

/**
 * containerd (1.5+) `certs.d/<upstream-host>/hosts.toml`: resolve and pull the upstream name
 * from the site registry. The site registry is also the `server` (containerd's last resort), so
 * a node never falls back to the internet: at an air-gapped site that would only add dial
 * timeouts, and it must not leak requests. With scoped naming the site keeps the upstream host
 * as the first path component, so the API root is `/v2/<upstream-host>` (override_path).
 */
export function renderHostsToml(upstreamHost: string, opts: HostsTomlOptions): string {
  const scheme = opts.transport === 'plain-http' ? 'http' : 'https';
  const base = `${scheme}://${opts.registry}`;
  const mirror = opts.scheme === 'scoped' ? `${base}/v2/${upstreamHost}` : base;
  const settings = ['capabilities = ["pull", "resolve"]'];
  if (opts.scheme === 'scoped') settings.push('override_path = true');
  if (opts.transport === 'insecure') settings.push('skip_verify = true');
  if (opts.transport === 'https' && opts.caFile) settings.push(`ca = ${tomlString(opts.caFile)}`);
  const lines = [
    `# Written by sealift load --extract-to: pull ${upstreamHost} images from the site registry ${opts.registry}, never from ${upstreamHost}.`,
    `# Install as /etc/containerd/certs.d/${upstreamHost}/hosts.toml (config_path = "/etc/containerd/certs.d").`,
    `server = ${tomlString(mirror)}`,
    ...settings,
    '',
    `[host.${tomlString(mirror)}]`,
    ...settings.map((l) => `  ${l}`),
  ];
  return `${lines.join('\n')}\n`;
}
