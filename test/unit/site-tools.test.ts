// The site tools' place in the bundle: first in the tar, platform by platform, sealift first;
// which platforms a bundle carries; and the refusals load gives before touching a registry.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { create as tarCreate } from 'tar';
import { describe, expect, it } from 'vitest';
import { parseSitePlatforms } from '../../src/bundle/site-tools.ts';
import { isSealiftError } from '../../src/errors.ts';
import { planSiteTools } from '../../src/load/site-tools.ts';
import { bundleTarOrder, openBundleArchive } from '../../src/bundle-format/index.ts';
import { tempDir } from '../support/process.ts';

async function tarOf(dir: string, files: string[]): Promise<string> {
  for (const f of files) {
    await mkdir(join(dir, 'in', f, '..'), { recursive: true });
    await writeFile(join(dir, 'in', f), f);
  }
  const tar = join(dir, 'b.tar');
  await tarCreate({ cwd: join(dir, 'in'), file: tar, portable: true, noDirRecurse: true }, files);
  return tar;
}

function thrown(f: () => unknown): { code: string; message: string; hint: string } {
  try {
    f();
  } catch (e) {
    if (isSealiftError(e)) return { code: e.code, message: e.message, hint: e.hint ?? '' };
    throw e;
  }
  throw new Error('did not throw');
}

const ALL = (p: string) => ['sealift', 'helm', 'helmfile', 'helm-diff'].map((t) => `bin/${p}/${t}`);

describe('site tools in the tar', () => {
  it('follow checksums, signature and bundle.json, platform by platform, sealift first; everything else keeps its order', () => {
    const given = [
      'bundle.json',
      'checksums.sha256',
      ...ALL('linux-arm64').reverse(),
      'charts/a.tgz',
      ...ALL('linux-amd64'),
    ];
    expect(bundleTarOrder(given)).toEqual([
      'checksums.sha256',
      'bundle.json',
      ...ALL('linux-amd64'),
      ...ALL('linux-arm64'),
      'charts/a.tgz',
    ]);
    expect(bundleTarOrder(['images/index.json', 'checksums.sha256.sig', 'bundle.json', 'checksums.sha256'])).toEqual([
      'checksums.sha256',
      'checksums.sha256.sig',
      'bundle.json',
      'images/index.json',
    ]);
  });

  it('--site-platform takes comma lists and repeats, and names the platforms it knows', () => {
    expect(parseSitePlatforms(['linux/amd64,linux/arm64', 'linux/amd64'])).toEqual(['linux/amd64', 'linux/arm64']);
    const bad = thrown(() => parseSitePlatforms(['linux/s390x']));
    expect(bad.code).toBe('USAGE');
    expect(bad.message).toContain('linux/s390x');
    expect(bad.hint).toContain('linux/amd64, linux/arm64');
  });
});

describe('planSiteTools (load --extract-to)', () => {
  it('refuses a bundle without the site platform, naming the platforms it has and the flag that makes one', async () => {
    await using dir = await tempDir();
    const archive = await openBundleArchive(await tarOf(dir.path, ['bundle.json', ...ALL('linux-amd64')]));
    expect(planSiteTools(archive, 'b.tar', 'linux/amd64')).toMatchObject({ carried: true, available: ['linux/amd64'] });
    const e = thrown(() => planSiteTools(archive, 'b.tar', 'linux/arm64'));
    expect(e.code).toBe('TOOL_MISSING');
    expect(e.message).toContain("carries site tools for linux/amd64, not for this site's linux/arm64");
    expect(e.hint).toContain('--site-platform linux/amd64,linux/arm64');
    await archive.close();
  });

  it('refuses an incomplete set and names the missing file; a bundle with none is not refused', async () => {
    await using dir = await tempDir();
    const partial = await openBundleArchive(
      await tarOf(dir.path, ['bundle.json', ...ALL('linux-amd64').filter((f) => !f.endsWith('/helmfile'))]),
    );
    const e = thrown(() => planSiteTools(partial, 'b.tar', 'linux/amd64'));
    expect(e.code).toBe('BUNDLE_INVALID');
    expect(e.message).toContain('bin/linux-amd64/helmfile');
    await partial.close();
    await using empty = await tempDir();
    const none = await openBundleArchive(await tarOf(empty.path, ['bundle.json']));
    expect(planSiteTools(none, 'b.tar', 'linux/amd64')).toEqual({
      platform: 'linux/amd64',
      carried: false,
      available: [],
    });
    await none.close();
  });
});
