// The environment a bundle carries for the site (src/bundle/site-env.ts): it reads back with
// loadEnvironment as the very environment the bundle was made from, overlays included, and
// carries no credentials.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeSiteEnvironment } from '../../src/bundle/site-env.ts';
import { listEnvironments, loadEnvironment } from '../../src/config/index.ts';
import { PROJECT_ROOT } from '../../src/tools.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sealift-site-env-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const effective = (e: Awaited<ReturnType<typeof loadEnvironment>>) => ({
  kubeVersion: e.kubeVersion,
  registry: e.registry,
  chartsFrom: e.chartsFrom,
  releases: e.releases,
});

describe('the environment a bundle carries', () => {
  it('reads back as the merged environment, overlays included, without source credentials', async () => {
    const overlay = join(dir, 'overlay.yaml');
    await writeFile(
      overlay,
      [
        'registry: { host: "127.0.0.1:5999", plainHttp: true, scheme: scoped }',
        'sources:',
        '  istio: { url: "https://robot:s3cret-token@mirror.example.com/istio" }',
        'releases:',
        '  istiod:',
        '    values: { pilot: { resources: null } }',
        '',
      ].join('\n'),
    );
    const env = await loadEnvironment(PROJECT_ROOT, 'airgap', { overlays: [overlay] });
    const site = join(dir, 'site');
    const files = await writeSiteEnvironment(site, env, ['environments/default.yaml', 'overlay.yaml (--overlay)']);
    expect(files.map((f) => f.path)).toEqual(['environments/default.yaml', 'environments/airgap.yaml']);

    expect(await listEnvironments(site)).toEqual(['airgap']);
    const back = await loadEnvironment(site, 'airgap');
    expect(effective(back)).toEqual(effective(env));
    expect(back.registry).toEqual({ host: '127.0.0.1:5999', plainHttp: true, scheme: 'scoped' });
    expect(back.sources.istio?.url).toBe('https://mirror.example.com/istio');
    const text = await readFile(join(site, 'environments', 'airgap.yaml'), 'utf8');
    expect(text).not.toContain('s3cret-token');
    expect(text).not.toContain('robot');
  });
});
