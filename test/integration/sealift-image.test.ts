// The sealift container image as a user gets it from `npm run build:image`: an OCI layout that
// skopeo reads (both platforms), that pushes to a real registry (distribution 2.8.2: with skopeo
// and with the script's own --push, sealift's copy engine), whose layers
// hold exactly the executable, the loader and libraries it links (ldd agrees), CA certificates,
// passwd/group and /tmp; whose root filesystem runs `/sealift --version` as user 65532 (amd64 in a
// chroot, arm64 in a chroot under qemu-user), and which containerd runs (`ctr run`). Two builds
// give one digest. The chart's default image is this one: same repository, tag, user and command.
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { buildSealiftImage, IMAGE_USER } from '../../src/container-image/index.ts';
import { PROJECT_ROOT, requireTool } from '../../src/tools.ts';
import { startContainerd } from '../support/containerd.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry } from '../support/registry.ts';

const BUILD = join(PROJECT_ROOT, 'scripts', 'build-image.ts');
const CHART = join(PROJECT_ROOT, 'deploy', 'charts', 'sealift-mirror');
const QEMU = '/usr/bin/qemu-aarch64-static';
const SOURCE = 'https://example.invalid/sealift.git';
const VERSION = (JSON.parse(await readFile(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

interface Built {
  layout: string;
  tag: string;
  digest: string;
  annotations: Record<string, string>;
  platforms: { platform: string; digest: string; layers: { digest: string; size: number }[] }[];
  pushed?: { reference: string; digest: string };
}

async function buildImage(out: string, extra: string[] = []): Promise<Built> {
  const r = await execa(process.execPath, [BUILD, '--out', out, '--source', SOURCE, '--json', ...extra], {
    reject: false,
    cwd: PROJECT_ROOT,
    // the creation time is then the commit's (asserted below)
    env: { SOURCE_DATE_EPOCH: undefined },
    timeout: 900_000,
  });
  expect(r.exitCode, r.stderr.slice(-3000)).toBe(0);
  return JSON.parse(r.stdout) as Built;
}

const blob = (layout: string, digest: string) => join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));

/** Every path in a platform's layers, as tar lists them (directories without the trailing /). */
async function layerPaths(built: Built, platform: string): Promise<string[]> {
  const p = built.platforms.find((x) => x.platform === platform)!;
  const out: string[] = [];
  for (const l of p.layers)
    out.push(...(await execa('tar', ['-tzf', blob(built.layout, l.digest)])).stdout.split('\n').filter(Boolean));
  return out.map((x) => x.replace(/\/$/, '')).sort();
}

async function extractRootfs(built: Built, platform: string, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const l of built.platforms.find((x) => x.platform === platform)!.layers)
    await execa('tar', ['-xzf', blob(built.layout, l.digest), '-C', dir]);
}

interface ImageConfig {
  config: { User: string; Entrypoint: string[]; Env: string[] };
}

async function imageConfig(layout: string, arch: string): Promise<ImageConfig> {
  const r = await execa('skopeo', ['inspect', '--config', '--override-arch', arch, `oci:${layout}:${VERSION}`]);
  return JSON.parse(r.stdout) as ImageConfig;
}

/** The shared libraries ldd says the amd64 executable loads (the loader and vdso apart). */
async function lddLibraries(exe: string): Promise<string[]> {
  const out = (await execa('ldd', [exe])).stdout.split('\n');
  return out
    .map((l) => /^\s*(\S+) => /.exec(l)?.[1])
    .filter((x): x is string => x !== undefined)
    .sort();
}

/** Runs the image's own Env only, as user 65532, inside the extracted root. */
function chrootRun(rootfs: string, env: string[], argv: string[]) {
  return execa('/usr/sbin/chroot', [`--userspec=${IMAGE_USER}:${IMAGE_USER}`, rootfs, ...argv], {
    reject: false,
    env: Object.fromEntries(env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)])),
    extendEnv: false,
    timeout: 120_000,
  });
}

const LIBS = ['libc.so.6', 'libdl.so.2', 'libgcc_s.so.1', 'libm.so.6', 'libpthread.so.0', 'libstdc++.so.6'];
const expectedPaths = (triplet: string, loader: string[]) =>
  [
    'etc',
    'etc/group',
    'etc/passwd',
    'etc/ssl',
    'etc/ssl/certs',
    'etc/ssl/certs/ca-certificates.crt',
    'lib',
    `lib/${triplet}`,
    ...loader,
    ...LIBS.map((l) => `lib/${triplet}/${l}`),
    'sealift',
    'tmp',
  ].sort();

describe('the sealift image', () => {
  it('is the same digest twice, reads in skopeo, pushes, holds only what it needs and runs on both platforms', async () => {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const a = await buildImage(join(tmp.path, 'image-a'));
    // the second build also pushes, with sealift's own copy engine
    const ownPush = `${reg.host}/sealift/pushed-by-sealift:${VERSION}`;
    const b = await buildImage(join(tmp.path, 'image-b'), ['--push', ownPush, '--plain-http']);
    expect(b.digest).toBe(a.digest);
    expect(b.pushed).toEqual({ reference: ownPush, digest: a.digest });
    expect(await readFile(join(b.layout, 'index.json'), 'utf8')).toBe(
      await readFile(join(a.layout, 'index.json'), 'utf8'),
    );
    expect(b.platforms).toEqual(a.platforms);

    // the annotations: version, revision (the commit), source, created from the commit's time
    const commit = (await execa('git', ['-C', PROJECT_ROOT, 'rev-parse', 'HEAD'])).stdout.trim();
    const commitTime = Number((await execa('git', ['-C', PROJECT_ROOT, 'log', '-1', '--format=%ct'])).stdout.trim());
    expect(a.tag).toBe(VERSION);
    expect(a.annotations).toMatchObject({
      'org.opencontainers.image.version': VERSION,
      'org.opencontainers.image.source': SOURCE,
      'org.opencontainers.image.created': new Date(commitTime * 1000).toISOString().replace('.000Z', 'Z'),
    });
    expect(a.annotations['org.opencontainers.image.revision']).toMatch(new RegExp(`^${commit}(-dirty)?$`));

    // skopeo reads the index and each platform from the layout
    const raw = JSON.parse((await execa('skopeo', ['inspect', '--raw', `oci:${a.layout}:${VERSION}`])).stdout) as {
      manifests: { digest: string; platform: { os: string; architecture: string } }[];
    };
    expect(raw.manifests.map((m) => `${m.platform.os}/${m.platform.architecture}`)).toEqual([
      'linux/amd64',
      'linux/arm64',
    ]);
    for (const arch of ['amd64', 'arm64']) {
      const inspected = JSON.parse(
        (await execa('skopeo', ['inspect', '--override-arch', arch, `oci:${a.layout}:${VERSION}`])).stdout,
      ) as { Architecture: string; Labels: Record<string, string> };
      expect(inspected.Architecture).toBe(arch);
      expect(inspected.Labels['org.opencontainers.image.version']).toBe(VERSION);
      const config = await imageConfig(a.layout, arch);
      expect(config.config).toMatchObject({ User: `${IMAGE_USER}:${IMAGE_USER}`, Entrypoint: ['/sealift'] });
    }

    // exactly what the executable needs, and nothing else; the libraries are the ones ldd names
    const amd64 = await layerPaths(a, 'linux/amd64');
    const arm64 = await layerPaths(a, 'linux/arm64');
    expect([...new Set(amd64.map((p) => p.split('/')[0]))].sort()).toEqual(['etc', 'lib', 'lib64', 'sealift', 'tmp']);
    expect([...new Set(arm64.map((p) => p.split('/')[0]))].sort()).toEqual(['etc', 'lib', 'sealift', 'tmp']);
    expect(amd64).toEqual(
      expectedPaths('x86_64-linux-gnu', [
        'lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
        'lib64',
        'lib64/ld-linux-x86-64.so.2',
      ]),
    );
    expect(arm64).toEqual(
      expectedPaths('aarch64-linux-gnu', ['lib/aarch64-linux-gnu/ld-linux-aarch64.so.1', 'lib/ld-linux-aarch64.so.1']),
    );
    expect(await lddLibraries(join(PROJECT_ROOT, 'dist', 'sealift-linux-amd64'))).toEqual(LIBS);

    // the root filesystems run the executable as user 65532 with the image's Env alone
    const amd64Root = join(tmp.path, 'rootfs-amd64');
    await extractRootfs(a, 'linux/amd64', amd64Root);
    const amd64Env = (await imageConfig(a.layout, 'amd64')).config.Env;
    const native = await chrootRun(amd64Root, amd64Env, ['/sealift', '--version']);
    expect(native.exitCode, native.stderr).toBe(0);
    expect(native.stdout).toMatch(new RegExp(`^sealift ${VERSION.replace(/\./g, '\\.')} \\(commit ${commit}`));

    expect(await execa(QEMU, ['--version'], { reject: false }).then((r) => r.exitCode)).toBe(0);
    const arm64Root = join(tmp.path, 'rootfs-arm64');
    await extractRootfs(a, 'linux/arm64', arm64Root);
    // qemu-user goes into this extracted copy only (the layers were listed above)
    await copyFile(QEMU, join(arm64Root, '.qemu-aarch64'));
    const arm64Env = (await imageConfig(a.layout, 'arm64')).config.Env;
    const emulated = await chrootRun(arm64Root, arm64Env, ['/.qemu-aarch64', '/sealift', '--version']);
    expect(emulated.exitCode, emulated.stderr).toBe(0);
    expect(emulated.stdout).toBe(native.stdout);

    // a registry serves the same index, and containerd pulls and runs it as 65532
    const ref = `${reg.host}/sealift/sealift:${VERSION}`;
    const pushed = await execa(
      'skopeo',
      ['copy', '--all', '--dest-tls-verify=false', `oci:${a.layout}:${VERSION}`, `docker://${ref}`],
      { reject: false },
    );
    expect(pushed.exitCode, pushed.stderr).toBe(0);
    const remote = JSON.parse((await execa('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`])).stdout) as {
      Digest: string;
      Labels: Record<string, string>;
    };
    expect(remote.Digest).toBe(a.digest);
    expect(remote.Labels['org.opencontainers.image.revision']).toBe(a.annotations['org.opencontainers.image.revision']);
    const remoteRaw = (await execa('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`])).stdout;
    expect(remoteRaw).toBe(await readFile(blob(a.layout, a.digest), 'utf8'));
    const own = JSON.parse(
      (await execa('skopeo', ['inspect', '--tls-verify=false', `docker://${ownPush}`])).stdout,
    ) as {
      Digest: string;
    };
    expect(own.Digest).toBe(a.digest);
    for (const arch of ['amd64', 'arm64']) {
      const [viaSkopeo, viaSealift] = await Promise.all(
        [ref, ownPush].map(async (r) =>
          JSON.parse(
            (await execa('skopeo', ['inspect', '--tls-verify=false', '--override-arch', arch, `docker://${r}`])).stdout,
          ),
        ),
      );
      expect(viaSealift.Layers, arch).toEqual(viaSkopeo.Layers);
    }

    await using containerd = await startContainerd();
    await containerd.ctr(['images', 'pull', '--snapshotter', 'native', '--plain-http', ref]);
    const ran = await containerd.ctr([
      'run',
      '--snapshotter',
      'native',
      ref,
      'sealift-version',
      '/sealift',
      '--version',
    ]);
    expect(ran.trim()).toBe(native.stdout.trim());
    const info = JSON.parse(await containerd.ctr(['containers', 'info', 'sealift-version'])) as {
      Spec: { process: { user: { uid: number; gid: number } } };
    };
    expect(info.Spec.process.user).toMatchObject({ uid: IMAGE_USER, gid: IMAGE_USER });
    await containerd.ctr(['containers', 'delete', 'sealift-version']);

    // the chart's default image is this image: its repository and tag, its user and entrypoint
    const values = join(tmp.path, 'values.yaml');
    await writeFile(
      values,
      `image: { registry: "${reg.host}" }\nmirror: { to: "${reg.host}" }\nimagelist: { content: "docker.io/library/busybox:1.36\\n" }\n`,
    );
    const rendered = await execa(requireTool('helm'), ['template', 'nightly', CHART, '-f', values]);
    const job = parseAllDocuments(rendered.stdout)
      .map((d) => d.toJS() as Record<string, any>) // eslint-disable-line @typescript-eslint/no-explicit-any
      .find((d) => d?.kind === 'Job')!;
    const pod = job.spec.template.spec;
    expect(pod.containers[0].image).toBe(ref);
    expect(pod.containers[0].command).toEqual(['/sealift']);
    expect(pod.securityContext).toMatchObject({ runAsUser: IMAGE_USER, runAsGroup: IMAGE_USER });
    const viaChart = JSON.parse(
      (await execa('skopeo', ['inspect', '--tls-verify=false', `docker://${pod.containers[0].image}`])).stdout,
    ) as { Digest: string };
    expect(viaChart.Digest).toBe(a.digest);
  }, 1_800_000);

  it('changes its digest with its creation time, and only with its inputs', async () => {
    // a small dynamically linked executable stands in for sealift: the same builder, seconds not minutes
    await using tmp = await tempDir();
    const build = (out: string, created: Date) =>
      buildSealiftImage({
        out: join(tmp.path, out),
        platforms: [{ platform: 'linux/amd64', executable: '/usr/bin/true' }],
        caCertificates: '/etc/ssl/certs/ca-certificates.crt',
        version: '9.9.9',
        revision: 'abc',
        created,
      });
    const one = await build('one', new Date(0));
    const again = await build('again', new Date(0));
    const later = await build('later', new Date(86_400_000));
    expect(again.index.digest).toBe(one.index.digest);
    expect(later.index.digest).not.toBe(one.index.digest);
    // only the config and what names it change: the layers are the same bytes
    expect(later.images[0]!.layers).toEqual(one.images[0]!.layers);
    // a rebuild into the same layout replaces it whole: no blob of the older build is left
    await build('one', new Date(86_400_000));
    const left = (await execa('ls', [join(tmp.path, 'one', 'blobs', 'sha256')])).stdout.split('\n').sort();
    const want = (await execa('ls', [join(tmp.path, 'later', 'blobs', 'sha256')])).stdout.split('\n').sort();
    expect(left).toEqual(want);
  });
});
