// `sealift bundle inspect` and `sealift bundle diff` on real bundles made by `sealift bundle` from a
// real registry: inspect names every image with the digest skopeo sees; a bundle against itself
// differs in nothing; after one image is re-pushed with new content and one is added, the diff
// names exactly those, and its new bytes are exactly the new images' blobs (manifests, configs,
// layers) that the first bundle lacks; an argument that is no bundle exits 10 naming it.
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSealift } from '../support/cli.ts';
import { craftBundle, editJson, resum } from '../support/bundles.ts';
import { seedImages, type SeededImage } from '../support/images.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry, type TestRegistry } from '../support/registry.ts';
import { requireTool } from '../../src/tools.ts';
import type { BundleDiffResult, BundleInspection } from '../../src/bundle/index.ts';

let registry: TestRegistry;
let work: Awaited<ReturnType<typeof tempDir>>;
let before: SeededImage[];
let after: SeededImage[];
let tarA: string;
let tarB: string;

const sealift = (args: string[]) => runSealift(args, { cwd: work.path });

/** `sealift bundle` of these references into <work>/<dir>/stack.tar (one name: site files compare by path) */
async function bundleOf(dir: string, refs: string[]): Promise<string> {
  const list = join(work.path, `${dir}-list`, 'stack.txt');
  await mkdir(dirname(list), { recursive: true });
  await writeFile(list, `${refs.join('\n')}\n`);
  const out = join(work.path, dir);
  const r = await sealift([
    'bundle',
    '--imagelist',
    list,
    '-o',
    out,
    '--name',
    'stack',
    '--plain-http',
    registry.host,
    '--no-site-tools',
  ]);
  expect(r.exitCode, r.stderr).toBe(0);
  return join(out, 'stack.tar');
}

/** What skopeo, an independent client, says the registry's tag resolves to. */
async function skopeoDigest(ref: string): Promise<string> {
  const { stdout } = await execa(requireTool('skopeo'), ['inspect', '--tls-verify=false', '--raw', `docker://${ref}`], {
    env: { ...process.env, XDG_RUNTIME_DIR: work.path },
  });
  return `sha256:${createHash('sha256').update(stdout).digest('hex')}`;
}

/** Every blob of a single-platform seeded image: its manifest, config and layers. */
const blobsOf = (i: SeededImage): [string, number][] => [[i.digest, i.size], ...Object.entries(i.blobs)];

beforeAll(async () => {
  work = await tempDir();
  registry = await startRegistry();
  before = await seedImages(
    registry.host,
    [
      { ref: 'docker.io/istio/pilot:1.23.2', layers: [300_000] },
      { ref: 'docker.io/istio/proxyv2:1.23.2', layers: [200_000, 50_000] },
    ],
    { workDir: work.path },
  );
  tarA = await bundleOf(
    'a',
    before.map((i) => i.testRef),
  );
  // pilot pushed again under its tag with new content; cert-manager is new
  after = await seedImages(
    registry.host,
    [
      { ref: 'docker.io/istio/pilot:1.23.2', layers: [310_000] },
      { ref: 'quay.io/jetstack/cert-manager-controller:v1.16.1', layers: [120_000] },
    ],
    { workDir: work.path },
  );
  tarB = await bundleOf('b', [...before.map((i) => i.testRef), after[1]!.testRef]);
}, 120_000);

afterAll(async () => {
  await registry?.stop();
  await work?.[Symbol.asyncDispose]();
});

describe('sealift bundle inspect', () => {
  it('--json names every image with the digest skopeo sees, unsigned, a full bundle, no tools', async () => {
    const r = await sealift(['bundle', 'inspect', tarB, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const v = JSON.parse(r.stdout) as BundleInspection;
    const expected = await Promise.all(
      [before[0]!, before[1]!, after[1]!].map(async (i) => ({
        reference: i.testRef,
        digest: await skopeoDigest(i.testRef),
      })),
    );
    expect(
      v.images
        .map((i) => ({ reference: i.reference, digest: i.digest }))
        .sort((a, b) => a.reference.localeCompare(b.reference)),
    ).toEqual(expected.sort((a, b) => a.reference.localeCompare(b.reference)));
    // B's pilot is the re-pushed one
    expect(v.images.find((i) => i.reference === after[0]!.testRef)?.digest).toBe(after[0]!.digest);
    for (const i of v.images) {
      expect(i.platforms).toEqual(['linux/amd64']);
      expect(i.blobs).toBe(i.reference.includes('proxyv2') ? 3 : 2);
    }
    expect(v).toMatchObject({ kind: 'tar', base: null, signature: 'unsigned', tools: [] });
    expect(v.totals.images).toBe(3);
  });

  it('prints a table on a non-TTY stdout with each reference and digest', async () => {
    const r = await sealift(['bundle', 'inspect', tarA]);
    expect(r.exitCode, r.stderr).toBe(0);
    for (const i of before) {
      const line = r.stdout.split('\n').find((l) => l.includes(i.testRef));
      expect(line).toContain(i.digest);
      expect(line).toContain('linux/amd64');
    }
    expect(r.stdout).toContain('base: full bundle');
    expect(r.stdout).toContain('signature: unsigned');
  });

  it('lists carried tools under bin/, a signature entry and the base bundle.json names', async () => {
    const b = await craftBundle(join(work.path, 'crafted'));
    await mkdir(join(b.root, 'bin', 'linux-amd64'), { recursive: true });
    await writeFile(join(b.root, 'bin', 'linux-amd64', 'helm'), Buffer.alloc(1234, 1));
    await writeFile(join(b.root, 'checksums.sha256.sig'), 'sig\n');
    // an incremental bundle's base that relies on nothing (every blob is carried)
    const base = {
      identity: `sha256:${'a'.repeat(64)}`,
      from: 'bundle',
      name: 'stack-2026-11.tar',
      createdAt: '2026-11-01T00:00:00.000Z',
      environment: null,
      registry: null,
      parent: null,
    };
    await editJson(b.root, 'bundle.json', (v) => {
      v.base = { ...base, absent: [], siteTools: [] };
    });
    const r = await sealift(['bundle', 'inspect', b.root, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const v = JSON.parse(r.stdout) as BundleInspection;
    // the tool's sha256 is the one checksums.sha256 lists (resum: as the writer would)
    await resum(b.root);
    const again = JSON.parse((await sealift(['bundle', 'inspect', b.root, '--json'])).stdout) as BundleInspection;
    const sha = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');
    expect(again.tools).toEqual([{ path: 'bin/linux-amd64/helm', size: 1234, sha256: sha(Buffer.alloc(1234, 1)) }]);
    expect(again.files).toEqual([
      {
        path: 'imagelists/crafted.txt',
        size: expect.any(Number),
        sha256: sha(await readFile(join(b.root, 'imagelists', 'crafted.txt'))),
      },
    ]);
    expect(v.tools.map((t) => [t.path, t.size])).toEqual([['bin/linux-amd64/helm', 1234]]);
    expect(v.signature).toBe('signed (not verified here: bundle verify --verify-key PUB checks it)');
    expect(v.base).toEqual({
      ...base,
      absent: 0,
      absentBytes: 0,
      siteTools: [],
    });
    // the image behind two nested indexes: its platform from bundle.json
    expect(v.images.map((i) => [i.reference, i.digest])).toEqual(b.images.map((i) => [i.reference, i.root.digest]));
    const human = await sealift(['bundle', 'inspect', b.root]);
    expect(human.stdout).toMatch(/bin\/linux-amd64\/helm\s+1\.2 KiB/);
    expect(human.stdout).toContain('signature: signed (not verified here: bundle verify --verify-key PUB checks it)');
    expect(human.stdout).toContain('base: incremental on stack-2026-11.tar (bundle, bundle.json sha256:aaaaaaaaaaaa');
  });

  it('a file that is no bundle exits 10 naming it', async () => {
    const junk = join(work.path, 'notes.txt');
    await writeFile(junk, 'not a bundle\n');
    const r = await sealift(['bundle', 'inspect', junk]);
    expect(r.exitCode).toBe(10);
    expect(r.stderr).toContain(junk);
  });
});

describe('sealift bundle diff', () => {
  it('a bundle against itself is empty', async () => {
    const r = await sealift(['bundle', 'diff', tarA, tarA, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout) as BundleDiffResult;
    expect(d.same).toBe(true);
    expect(d.images).toEqual({ added: [], removed: [], changed: [], unchanged: 2 });
    expect(d.newBytes).toBe(0);
  });

  it('after one image changed and one added: names exactly those, new bytes are their new blobs', async () => {
    const r = await sealift(['bundle', 'diff', tarA, tarB, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout) as BundleDiffResult;
    expect(d.images.added).toEqual([{ reference: after[1]!.testRef, digest: after[1]!.digest }]);
    expect(d.images.removed).toEqual([]);
    expect(d.images.changed).toEqual([
      { reference: before[0]!.testRef, from: before[0]!.digest, to: after[0]!.digest },
    ]);
    expect(d.images.unchanged).toBe(1);
    // the carried image lists name the images, so they changed; no charts or tools in either
    expect(d.files).toEqual({
      added: [],
      removed: [],
      changed: ['imagelists/stack.lock.json', 'imagelists/stack.txt'],
    });
    expect(d.charts).toEqual({ added: [], removed: [], changed: [] });
    expect(d.tools).toEqual({ added: [], removed: [], changed: [] });
    const inA = new Set(before.flatMap(blobsOf).map(([digest]) => digest));
    const fresh = new Map([...after.flatMap(blobsOf)].filter(([digest]) => !inA.has(digest)));
    expect(d.newBlobs).toBe(fresh.size);
    expect(d.newBytes).toBe([...fresh.values()].reduce((n, s) => n + s, 0));
    // exit 0 on a difference, and the table says what changed
    const human = await sealift(['bundle', 'diff', tarA, tarB]);
    expect(human.exitCode).toBe(0);
    expect(human.stdout).toContain(`+ ${after[1]!.testRef}`);
    expect(human.stdout).toContain(`~ ${before[0]!.testRef}`);
    expect(human.stdout).toContain(`(${d.newBytes} bytes)`);
  });

  it('names which argument is no bundle', async () => {
    const junk = join(work.path, 'b-junk.tar');
    await writeFile(junk, Buffer.alloc(4096, 7));
    const r = await sealift(['bundle', 'diff', tarA, junk]);
    expect(r.exitCode).toBe(10);
    expect(r.stderr).toContain(`bundle B (${junk})`);
    const j = await sealift(['bundle', 'diff', junk, tarA, '--json']);
    expect(j.exitCode).toBe(10);
    expect(JSON.parse(j.stdout)).toMatchObject({
      ok: false,
      error: { code: 'BUNDLE_INVALID', argument: 'A', bundle: junk },
    });
  });
});
