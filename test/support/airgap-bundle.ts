// `sealift bundle -e airgap` of the real stack, made the way the site tests need it: charts and
// Knative release files from loopback fixture servers, every locked image seeded small under
// its upstream path on a loopback "upstream" registry, the environment's registry overlaid to
// `siteHost` (10.61.3.31 is only a string: nothing may contact it). The served Knative release
// files are copies whose pinned digests are replaced by the seeded images' digests (as the demo
// does): generated images cannot have upstream's digests. Every upstream server is stopped
// before this returns: what follows is on the far side of the air gap.
import { cp, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { normalizeImageReference } from '../../src/oci/reference.ts';
import { FIXTURES, startChartServers } from './chart-servers.ts';
import { runSealift } from './cli.ts';
import { seedImages } from './images.ts';
import { startRegistry } from './registry.ts';

export interface ImageLockFile {
  images: { reference: string; digest?: string }[];
}

export interface AirgapBundle {
  /** bundles/airgap.tar */
  tar: string;
  overlay: string;
  lockFile: string;
  lock: ImageLockFile;
  /** sealift with the cache dir the bundle was made with */
  run: (args: string[]) => ReturnType<typeof runSealift>;
}

export async function makeAirgapBundle(opts: {
  workDir: string;
  siteHost: string;
  scheme: 'host-swap' | 'scoped';
  /** more `sealift bundle` flags (--site-platform, --no-site-tools) */
  bundleArgs?: string[];
}): Promise<AirgapBundle> {
  const work = opts.workDir;
  const releasesDir = join(work, 'releases');
  await cp(join(FIXTURES, 'releases'), releasesDir, { recursive: true });
  const servers = await startChartServers({ releasesDir });
  const upstream = await startRegistry();
  try {
    const cache = join(work, 'cache');
    const run = (args: string[]) => runSealift(args, { env: { ...servers.helmEnv, SEALIFT_CACHE_DIR: cache } });
    const overlay = join(work, 'overlay.yaml');
    await writeFile(
      overlay,
      `${await servers.sourcesOverlayYaml()}\nregistry:\n  host: ${opts.siteHost}\n  plainHttp: true\n  scheme: ${opts.scheme}\n`,
    );
    const lists = join(work, 'imagelists');
    const images = await run(['images', '-e', 'airgap', '--overlay', overlay, '--out', lists]);
    expect(images.exitCode, images.stderr.slice(-3000)).toBe(0);

    // every locked image, small, under its upstream path; pinned digests become the seeded ones
    const lockFile = join(lists, 'airgap.lock.json');
    const lock = JSON.parse(await readFile(lockFile, 'utf8')) as ImageLockFile;
    const refs = lock.images.map((e, i) => ({ ref: normalizeImageReference(e.reference), i }));
    const pushed = await seedImages(
      upstream.host,
      refs.map(({ ref, i }) => ({
        ref: `${ref.registry}/${ref.repository}:${ref.tag ?? `pinned-${i}`}`,
        base: 'base',
        layers: [16 << 10],
      })),
      { workDir: work },
    );
    lock.images = lock.images.map((e, i) => {
      const ref = normalizeImageReference(e.reference);
      return ref.digest
        ? { ...e, reference: `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}@${pushed[i]?.digest}` }
        : e;
    });
    await writeFile(lockFile, JSON.stringify(lock, null, 2));
    // the release files pin what was seeded (the server reads them on every request)
    const repin = lock.images.flatMap((e, i) => {
      const before = refs[i]!.ref.digest;
      const after = normalizeImageReference(e.reference).digest;
      return before && after ? [[before, after] as const] : [];
    });
    for (const f of await readdir(releasesDir, { recursive: true })) {
      if (!f.endsWith('.yaml')) continue;
      const text = await readFile(join(releasesDir, f), 'utf8');
      await writeFile(
        join(releasesDir, f),
        repin.reduce((t, [a, b]) => t.split(a).join(b), text),
      );
    }
    const hosts = [...new Set(lock.images.map((e) => normalizeImageReference(e.reference).registry))];
    const out = join(work, 'bundles');
    const bundle = await run([
      'bundle',
      '-e',
      'airgap',
      '--overlay',
      overlay,
      '--imagelists',
      lists,
      '-o',
      out,
      '--plain-http',
      upstream.host,
      ...hosts.flatMap((h) => ['--mirror', `${h}=${upstream.host}`]),
      ...(opts.bundleArgs ?? []),
    ]);
    expect(bundle.exitCode, bundle.stderr.slice(-3000)).toBe(0);
    return { tar: join(out, 'airgap.tar'), overlay, lockFile, lock, run };
  } finally {
    // the air gap: nothing upstream answers any more
    await upstream.stop();
    await servers.stop();
  }
}
