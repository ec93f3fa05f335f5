// Where images land at the site, and the containerd hosts.toml that makes nodes pull there.
import { describe, expect, it } from 'vitest';
import { isSealiftError } from '../../src/errors.ts';
import { formatImageReference, normalizeImageReference } from '../../src/images/reference.ts';
import { parseNamingScheme, planTargets, renderHostsToml, upstreamHosts } from '../../src/load/naming.ts';

const REG = '10.61.3.31:35000'; // a string only: nothing connects to it

describe('planTargets', () => {
  it.each([
    ['docker.io/istio/pilot:1.23.2', 'host-swap', `${REG}/istio/pilot:1.23.2`],
    ['docker.io/istio/pilot:1.23.2', 'scoped', `${REG}/docker.io/istio/pilot:1.23.2`],
    ['nginx:1.27', 'host-swap', `${REG}/library/nginx:1.27`],
    [
      'quay.io/jetstack/cert-manager-controller:v1.16.1',
      'host-swap',
      `${REG}/jetstack/cert-manager-controller:v1.16.1`,
    ],
    [
      `gcr.io/knative-releases/knative.dev/serving/cmd/queue@sha256:${'a'.repeat(64)}`,
      'host-swap',
      `${REG}/knative-releases/knative.dev/serving/cmd/queue@sha256:${'a'.repeat(64)}`,
    ],
    [
      `ghcr.io/kserve/kserve-controller:v0.15.2@sha256:${'b'.repeat(64)}`,
      'scoped',
      `${REG}/ghcr.io/kserve/kserve-controller:v0.15.2@sha256:${'b'.repeat(64)}`,
    ],
  ] as const)('%s (%s) -> %s', (source, scheme, target) => {
    const [t] = planTargets([source], REG, scheme);
    expect(t && formatImageReference(t.target)).toBe(target);
    expect(t && formatImageReference(t.source)).toBe(formatImageReference(normalizeImageReference(source)));
  });

  it('keeps tags of one repository apart and drops exact duplicates', () => {
    const out = planTargets(['docker.io/x/y:1', 'docker.io/x/y:2', 'x/y:1'], REG, 'host-swap');
    expect(out.map((t) => formatImageReference(t.target))).toEqual([`${REG}/x/y:1`, `${REG}/x/y:2`]);
  });

  it('refuses two sources that land on one name and suggests --scheme scoped', () => {
    const err = (() => {
      try {
        planTargets(['docker.io/x/y:1', 'quay.io/x/y:2', 'docker.io/a/b:1'], REG, 'host-swap');
      } catch (e) {
        return e;
      }
    })();
    expect(isSealiftError(err) && err.code).toBe('USAGE');
    expect((err as Error).message).toContain(`docker.io/x/y and quay.io/x/y would both become ${REG}/x/y`);
    expect(isSealiftError(err) && err.hint).toContain('--scheme scoped');
    // the same sources are fine when scoped
    expect(
      planTargets(['docker.io/x/y:1', 'quay.io/x/y:2'], REG, 'scoped').map((t) => formatImageReference(t.target)),
    ).toEqual([`${REG}/docker.io/x/y:1`, `${REG}/quay.io/x/y:2`]);
  });

  it('parses the scheme flag', () => {
    expect(parseNamingScheme(undefined)).toBe('host-swap');
    expect(parseNamingScheme('scoped')).toBe('scoped');
    expect(() => parseNamingScheme('flat')).toThrow(/--scheme must be host-swap or scoped/);
  });
});

describe('hosts.toml', () => {
  it('points an upstream host at a plain-HTTP site registry and never at the upstream', () => {
    const toml = renderHostsToml('docker.io', { registry: REG, scheme: 'host-swap', transport: 'plain-http' });
    expect(toml).toContain(`server = "http://${REG}"\ncapabilities = ["pull", "resolve"]\n`);
    expect(toml).toContain(`[host."http://${REG}"]\n  capabilities = ["pull", "resolve"]\n`);
    expect(toml).not.toContain('override_path');
    expect(toml).not.toMatch(/registry-1|https:\/\/docker\.io/);
  });

  it('uses the upstream host as the path prefix when scoped', () => {
    const toml = renderHostsToml('quay.io', { registry: REG, scheme: 'scoped', transport: 'plain-http' });
    expect(toml).toContain(
      `server = "http://${REG}/v2/quay.io"\ncapabilities = ["pull", "resolve"]\noverride_path = true\n`,
    );
    expect(toml).toContain(
      `[host."http://${REG}/v2/quay.io"]\n  capabilities = ["pull", "resolve"]\n  override_path = true\n`,
    );
  });

  it('writes TLS settings for https registries', () => {
    expect(renderHostsToml('ghcr.io', { registry: REG, scheme: 'host-swap', transport: 'insecure' })).toContain(
      `[host."https://${REG}"]\n  capabilities = ["pull", "resolve"]\n  skip_verify = true`,
    );
    expect(
      renderHostsToml('ghcr.io', { registry: REG, scheme: 'host-swap', transport: 'https', caFile: '/etc/ca.pem' }),
    ).toContain('  ca = "/etc/ca.pem"');
  });

  it('lists each upstream host once', () => {
    const refs = ['docker.io/a/b:1', 'nginx', 'quay.io/c/d:2', 'gcr.io/e/f:3'].map((r) => normalizeImageReference(r));
    expect(upstreamHosts(refs)).toEqual(['docker.io', 'gcr.io', 'quay.io']);
  });
});
