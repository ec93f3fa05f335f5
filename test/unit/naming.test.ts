// Where images land at the site (src/oci/naming.ts: the one naming function), and the containerd
// hosts.toml that makes nodes pull there.
import { describe, expect, it } from 'vitest';
import { isSealiftError, SealiftError } from '../../src/errors.ts';
import { siteImage } from '../../src/generate/plan.ts';
import { renderHostsToml, upstreamHosts } from '../../src/load/hosts-toml.ts';
import { parseNamingScheme, planTargets, sitePrefix, siteReference } from '../../src/oci/naming.ts';
import { formatImageReference, normalizeImageReference, parseImageReference } from '../../src/oci/reference.ts';

const REG = '10.61.3.31:35000'; // a string only: nothing connects to it
const D = `sha256:${'0123456789abcdef'.repeat(4)}`;

describe('bug 1 (issue 8): generate and load name docker.io/<single> and index.docker.io/... alike', () => {
  // every way of writing one image; generate (siteImage over an image knob), load and mirror
  // (planTargets) and verify (siteReference over the normalized lock entry) must agree
  it.each([
    ['docker.io/busybox', 'host-swap', `${REG}/library/busybox`],
    ['docker.io/busybox:1.36', 'host-swap', `${REG}/library/busybox:1.36`],
    ['index.docker.io/busybox:1.36', 'host-swap', `${REG}/library/busybox:1.36`],
    ['index.docker.io/library/busybox:1.36', 'host-swap', `${REG}/library/busybox:1.36`],
    ['busybox:1.36', 'host-swap', `${REG}/library/busybox:1.36`],
    ['index.docker.io/istio/pilot:1.23.2', 'host-swap', `${REG}/istio/pilot:1.23.2`],
    ['docker.io/busybox:1.36', 'scoped', `${REG}/docker.io/library/busybox:1.36`],
    ['index.docker.io/istio/pilot:1.23.2', 'scoped', `${REG}/docker.io/istio/pilot:1.23.2`],
    ['index.docker.io/busybox', 'scoped', `${REG}/docker.io/library/busybox`],
  ] as const)('%s (%s) -> %s everywhere', (input, scheme, site) => {
    const generated = siteImage(input, { host: REG, scheme }, 'releases.r.imageKnobs.image');
    const [loaded] = planTargets([input], REG, scheme);
    const verified = siteReference(normalizeImageReference(input), REG, scheme);
    expect(generated).toBe(site);
    expect(formatImageReference(loaded!.target)).toBe(site);
    expect(formatImageReference(verified)).toBe(site);
  });

  it('a hub prefix (trailing "/") maps so that prefix + name maps to site prefix + name', () => {
    for (const scheme of ['host-swap', 'scoped'] as const) {
      for (const hub of ['docker.io/istio/', 'index.docker.io/istio/']) {
        const mapped = siteImage(hub, { host: REG, scheme }, 'global.hub');
        const [pilot] = planTargets([`${hub}pilot:1.23.2`], REG, scheme);
        expect(`${mapped}/pilot:1.23.2`).toBe(formatImageReference(pilot!.target));
      }
    }
    expect(sitePrefix('gcr.io/knative-releases', REG, 'scoped')).toBe(`${REG}/gcr.io/knative-releases`);
    expect(() => sitePrefix('docker.io/istio:1', REG)).toThrow(SealiftError);
  });
});

describe('siteReference', () => {
  it.each([
    ['docker.io/istio/pilot:1.23.2', 'host-swap', `${REG}/istio/pilot:1.23.2`],
    ['nginx', 'host-swap', `${REG}/library/nginx`],
    [
      `gcr.io/knative-releases/knative.dev/serving/cmd/queue@${D}`,
      'host-swap',
      `${REG}/knative-releases/knative.dev/serving/cmd/queue@${D}`,
    ],
    ['quay.io/brancz/kube-rbac-proxy:v0.18.0', 'scoped', `${REG}/quay.io/brancz/kube-rbac-proxy:v0.18.0`],
    ['localhost:5000/a:1', 'host-swap', `${REG}/a:1`],
  ] as const)('%s (%s) -> %s', (input, scheme, out) => {
    expect(formatImageReference(siteReference(parseImageReference(input), REG, scheme))).toBe(out);
  });

  it('refuses a registry given with a scheme', () => {
    let e: unknown;
    try {
      siteReference(parseImageReference('x'), 'http://10.61.3.31:35000');
    } catch (x) {
      e = x;
    }
    expect(isSealiftError(e) && e.code).toBe('USAGE');
  });
});

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
