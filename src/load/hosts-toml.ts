// The containerd configuration that lets nodes pull upstream names from the site registry
// (load --extract-to writes it). The names themselves: src/oci/naming.ts.
import type { ImageReference } from '../oci/reference.ts';
import type { NamingScheme } from '../oci/naming.ts';

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
