// What a node does after load: a real containerd (Debian's 1.6, as a plain process) pulls the
// loaded images, by site name with --plain-http, and by their upstream names through the
// hosts.toml that `load --extract-to` wrote (generated for the loopback test registry as the
// site registry: no other address is ever contacted).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startContainerd } from '../support/containerd.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry } from '../support/registry.ts';
import { makeImages, sealift, writeBundle } from './load-fixtures.ts';

/** REF -> DIGEST from `ctr images ls` */
async function ctrImages(ctr: (a: string[]) => Promise<string>): Promise<Map<string, string>> {
  const out = await ctr(['images', 'ls']);
  const m = new Map<string, string>();
  for (const line of out.split('\n').slice(1)) {
    const [ref, , digest] = line.trim().split(/\s+/);
    if (ref && digest) m.set(ref, digest);
  }
  return m;
}

const NAMES = [
  'docker.io/istio/pilot:1.23.2',
  'quay.io/jetstack/cert-manager-controller:v1.16.1',
  'ghcr.io/kserve/kserve-controller:v0.15.2',
];

describe('containerd pulls what load pushed', () => {
  it('by site name, and by upstream name through the generated hosts.toml (host-swap and scoped)', async () => {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    await using scopedReg = await startRegistry();
    await using containerd = await startContainerd();
    const images = makeImages(NAMES);
    const bundle = await writeBundle(join(tmp.path, 'stage'), join(tmp.path, 'b.tar'), images, {
      'helmfile.yaml.gotmpl': 'releases: []\n',
    });

    const site = join(tmp.path, 'site');
    const load = await sealift(['load', bundle, '--registry', reg.host, '--plain-http', '--extract-to', site]);
    expect(load.exitCode, load.stdout + load.stderr).toBe(0);
    const toml = await readFile(join(site, 'containerd/certs.d/quay.io/hosts.toml'), 'utf8');
    expect(toml).toContain(`[host."http://${reg.host}"]`);

    // 1. by site name, as the airgap values reference it
    await containerd.ctr([
      'images',
      'pull',
      '--snapshotter',
      'native',
      '--plain-http',
      `${reg.host}/istio/pilot:1.23.2`,
    ]);
    // 2. by upstream name, resolved at the site registry through hosts.toml
    const hostsDir = join(site, 'containerd/certs.d');
    await containerd.ctr([
      'images',
      'pull',
      '--snapshotter',
      'native',
      '--hosts-dir',
      hostsDir,
      'quay.io/jetstack/cert-manager-controller:v1.16.1',
    ]);
    await containerd.ctr([
      'images',
      'pull',
      '--snapshotter',
      'native',
      '--hosts-dir',
      hostsDir,
      'ghcr.io/kserve/kserve-controller:v0.15.2',
    ]);

    // 3. scoped naming: REG/<upstream-host>/<path>, reached through override_path
    const scopedSite = join(tmp.path, 'site-scoped');
    const scoped = await sealift([
      'load',
      bundle,
      '--registry',
      scopedReg.host,
      '--plain-http',
      '--scheme',
      'scoped',
      '--extract-to',
      scopedSite,
    ]);
    expect(scoped.exitCode, scoped.stdout + scoped.stderr).toBe(0);
    await containerd.ctr([
      'images',
      'pull',
      '--snapshotter',
      'native',
      '--hosts-dir',
      join(scopedSite, 'containerd/certs.d'),
      'docker.io/istio/pilot:1.23.2',
    ]);

    const pulled = await ctrImages(containerd.ctr);
    expect(pulled.get(`${reg.host}/istio/pilot:1.23.2`)).toBe(images[0]?.root.digest);
    expect(pulled.get('quay.io/jetstack/cert-manager-controller:v1.16.1')).toBe(images[1]?.root.digest);
    expect(pulled.get('ghcr.io/kserve/kserve-controller:v0.15.2')).toBe(images[2]?.root.digest);
    expect(pulled.get('docker.io/istio/pilot:1.23.2')).toBe(images[0]?.root.digest);
    // the layers were unpacked into the native snapshotter (the pull is complete, not just metadata)
    expect((await containerd.ctr(['snapshots', '--snapshotter', 'native', 'ls'])).split('\n').length).toBeGreaterThan(
      3,
    );
  });
});
