// Damaged and hostile bundles (issue 15, classes 1-4), each run through BOTH `sealift load` and
// `sealift bundle verify`: one reader and one check (src/bundle-format), so one verdict. Every
// case starts from a good bundle made in the real format (test/support/bundles.ts) and damages
// one thing; a control shows the good bundle loads and verifies, so the cases can fail.
//
//   class 1: links (listed, looping, in a tar and in a directory) never hang: refused, bounded
//   class 2: an incomplete bundle is refused before anything is pushed, naming the image
//   class 3: CRLF lines, a duplicated line, a missing manifest behind nested indexes, ".." in a
//            source annotation, bundle.json version 99: the same verdict from both commands
//   class 4: what is not a bundle is named "not a sealift bundle", never INTERNAL
import { randomBytes } from 'node:crypto';
import { appendFile, link, mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { execa } from 'execa';
import { create as tarCreate } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blobPath, CHECKSUMS_FILE } from '../../src/bundle-format/index.ts';
import { packBundle } from '../../src/bundle/pack.ts';
import { craftBundle, editJson, resum, type CraftedBundle } from '../support/bundles.ts';
import { runSealift } from '../support/cli.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry, storedRepositories, type TestRegistry } from '../support/registry.ts';

interface Verdict {
  exitCode: number | undefined;
  code: string | undefined;
  message: string;
  stderr: string;
}

async function verdict(args: string[]): Promise<Verdict> {
  // a hang is a failure of its own: 60 s is far more than any of these small bundles needs
  const r = await runSealift([...args, '--json'], { timeout: 60_000, env: { SEALIFT_CACHE_DIR: cacheDir } });
  let code: string | undefined;
  let message = '';
  try {
    const out = JSON.parse(r.stdout) as { error?: { code: string; message: string } };
    code = out.error?.code;
    message = out.error?.message ?? '';
  } catch {
    message = r.stdout;
  }
  return { exitCode: r.exitCode, code, message, stderr: r.stderr };
}

let reg: TestRegistry;
let tmp: Awaited<ReturnType<typeof tempDir>>;
let cacheDir: string;

beforeAll(async () => {
  reg = await startRegistry();
  tmp = await tempDir('sealift-bad-bundles-');
  cacheDir = join(tmp.path, 'cache');
});
afterAll(async () => {
  await reg?.stop();
  await tmp?.[Symbol.asyncDispose]();
});

/** Every path under root (files, directories, links), as a tar would list them: bundle.json first. */
async function allPaths(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true, recursive: true }))
    if (!e.isDirectory()) out.push(relative(root, join(e.parentPath, e.name)));
  return ['bundle.json', ...out.filter((p) => p !== 'bundle.json').sort()];
}

/** Tars a directory as it is (links stay links) with GNU tar: what a hand-made or altered bundle
 *  looks like. (node-tar's pack stalled on a hard link when the suite ran whole.) */
async function tarAsIs(root: string, out: string): Promise<string> {
  await execa('tar', ['--format=posix', '-cf', out, '-C', root, '--no-recursion', ...(await allPaths(root))]);
  return out;
}

let n = 0;
async function fresh(): Promise<CraftedBundle> {
  return craftBundle(join(tmp.path, `case-${n++}`));
}

/** Packs with the real writer (which writes the .sha256 beside the tar, as bundle does). */
async function pack(b: CraftedBundle): Promise<string> {
  const out = `${b.root}.tar`;
  await packBundle({ root: b.root, output: out });
  return out;
}

const line = (hex: string, path: string) => `${hex}  ${path}\n`;
const ZERO = '0'.repeat(64);

type Case = [name: string, make: () => Promise<string>, expected: RegExp];

const cases: Record<string, Case[]> = {
  'class 1: links': [
    [
      'a listed symlink loop beside the images, in a tar',
      async () => {
        const b = await fresh();
        await symlink('b.tgz', join(b.root, 'charts-a.tgz'));
        await symlink('charts-a.tgz', join(b.root, 'b.tgz'));
        await appendFile(join(b.root, CHECKSUMS_FILE), line(ZERO, 'charts-a.tgz') + line(ZERO, 'b.tgz'));
        return tarAsIs(b.root, `${b.root}.tar`);
      },
      /is a symlink .*a bundle holds no links/,
    ],
    [
      'a blob replaced by a symlink to itself, listed, in a tar',
      async () => {
        const b = await fresh();
        const blob = blobPath(b.images[0]!.layers[0]!.digest);
        await rm(join(b.root, blob));
        await symlink(blob.split('/').pop()!, join(b.root, blob));
        return tarAsIs(b.root, `${b.root}.tar`);
      },
      /is a symlink .*a bundle holds no links/,
    ],
    [
      'a listed symlink loop in a directory bundle',
      async () => {
        const b = await fresh();
        await mkdir(join(b.root, 'loop'));
        await symlink('../loop/x', join(b.root, 'loop', 'x'));
        await appendFile(join(b.root, CHECKSUMS_FILE), line(ZERO, 'loop/x'));
        return b.root;
      },
      /"loop\/x" is a symlink .*a bundle holds no links/,
    ],
    [
      'a hard link to a listed blob, in a tar',
      async () => {
        const b = await fresh();
        const blob = blobPath(b.images[1]!.layers[0]!.digest);
        await link(join(b.root, blob), join(b.root, 'imagelists', 'copy'));
        await resum(b.root);
        return tarAsIs(b.root, `${b.root}.tar`);
      },
      /is a hard link .*a bundle holds no links/,
    ],
  ],
  'class 2: incomplete': [
    [
      'an image bundle.json lists is missing from images/index.json',
      async () => {
        const b = await fresh();
        await editJson(b.root, 'images/index.json', (idx) => {
          (idx.manifests as unknown[]).splice(1, 1);
        });
        await resum(b.root);
        return pack(b);
      },
      /incomplete.*\n.*quay\.io\/jetstack\/cert-manager-controller:v1\.16\.1: listed in bundle\.json but not in images\/index\.json/,
    ],
    [
      'a layer is missing (checksums consistent)',
      async () => {
        const b = await fresh();
        await rm(join(b.root, blobPath(b.images[0]!.layers[0]!.digest)));
        await resum(b.root);
        return pack(b);
      },
      /incomplete[^]*docker\.io\/library\/busybox:1\.36: sha256:[a-f0-9]{64} is referenced but not in the bundle/,
    ],
    [
      'a root descriptor is short (checksums consistent)',
      async () => {
        const b = await fresh();
        const size = b.images[0]!.root.size - 7;
        await editJson(b.root, 'images/index.json', (idx) => {
          (idx.manifests as { size: number }[])[0]!.size = size;
        });
        await editJson(b.root, 'bundle.json', (idx) => {
          (idx.images as { size: number }[])[0]!.size = size;
        });
        await resum(b.root);
        return pack(b);
      },
      /incomplete[^]*docker\.io\/library\/busybox:1\.36: sha256:[a-f0-9]{64} is \d+ bytes, (its descriptor|bundle\.json) says \d+/,
    ],
    [
      'an extra image in images/index.json that bundle.json does not list',
      async () => {
        const b = await fresh();
        await editJson(b.root, 'bundle.json', (idx) => {
          (idx.images as unknown[]).splice(0, 1);
        });
        await resum(b.root);
        return pack(b);
      },
      /incomplete[^]*docker\.io\/library\/busybox:1\.36: in images\/index\.json but not listed in bundle\.json/,
    ],
  ],
  'class 3: one verdict': [
    [
      'CRLF checksum lines',
      async () => {
        const b = await fresh();
        const text = await readFile(join(b.root, CHECKSUMS_FILE), 'utf8');
        await writeFile(join(b.root, CHECKSUMS_FILE), text.replace(/\n/g, '\r\n'));
        return pack(b);
      },
      /checksums\.sha256 line 1 ends in CR \(CRLF line ends\)/,
    ],
    [
      'an identical duplicated checksum line',
      async () => {
        const b = await fresh();
        const text = await readFile(join(b.root, CHECKSUMS_FILE), 'utf8');
        await writeFile(join(b.root, CHECKSUMS_FILE), text + text.split('\n')[0] + '\n');
        return pack(b);
      },
      /checksums\.sha256 line \d+ lists "[^"]+" a second time/,
    ],
    [
      'a missing manifest behind nested indexes',
      async () => {
        const b = await fresh();
        const innermost = b.images[1]!.manifests.at(-1)!;
        await rm(join(b.root, blobPath(innermost.digest)));
        await resum(b.root);
        return pack(b);
      },
      /incomplete[^]*quay\.io\/jetstack\/cert-manager-controller:v1\.16\.1: sha256:[a-f0-9]{64} is referenced but not in the bundle/,
    ],
    [
      'a source annotation with ".." path segments',
      async () => {
        const b = await fresh();
        await editJson(b.root, 'images/index.json', (idx) => {
          const m = (idx.manifests as { annotations: Record<string, string> }[])[0]!;
          m.annotations['io.sealift.source'] = 'docker.io/../../etc/busybox:1.36';
        });
        await resum(b.root);
        return pack(b);
      },
      /images\/index\.json entry 1 names the source "docker\.io\/\.\.\/\.\.\/etc\/busybox:1\.36", which is not an image reference/,
    ],
    [
      'bundle.json version 99',
      async () => {
        const b = await fresh();
        await editJson(b.root, 'bundle.json', (idx) => {
          idx.version = 99;
        });
        await resum(b.root);
        return pack(b);
      },
      /bundle\.json has format version 99; this sealift reads version 1/,
    ],
    [
      'a checksum line with a "./" path',
      async () => {
        const b = await fresh();
        const text = await readFile(join(b.root, CHECKSUMS_FILE), 'utf8');
        await writeFile(join(b.root, CHECKSUMS_FILE), text.replace('  bundle.json', '  ./bundle.json'));
        return pack(b);
      },
      /checksums\.sha256 line \d+ names "\.\/bundle\.json", which is not in normal form/,
    ],
  ],
  'class 4: not a bundle': [
    [
      'random bytes',
      async () => {
        const f = join(tmp.path, `random-${n++}.tar`);
        await writeFile(f, randomBytes(64 * 1024));
        return f;
      },
      /is not a sealift bundle \(not a tar\)/,
    ],
    [
      'a small text file',
      async () => {
        const f = join(tmp.path, `note-${n++}.tar`);
        await writeFile(f, 'this is not a bundle\n');
        return f;
      },
      /is not a sealift bundle \(not a tar\): it has 21 bytes/,
    ],
    [
      'a text file of a few KB',
      async () => {
        const f = join(tmp.path, `readme-${n++}.tar`);
        await writeFile(f, 'sealift carries a stack across an air gap.\n'.repeat(100));
        return f;
      },
      /is not a sealift bundle \(not a tar\): its first 512 bytes are no tar header/,
    ],
    [
      'a tar of something else',
      async () => {
        const dir = join(tmp.path, `other-${n++}`);
        await mkdir(dir);
        await writeFile(join(dir, 'notes.txt'), 'hello');
        await tarCreate({ file: `${dir}.tar`, cwd: dir, portable: true }, ['notes.txt']);
        return `${dir}.tar`;
      },
      /is a tar but not a sealift bundle: it has no bundle\.json/,
    ],
  ],
};

describe('bad bundles: load and bundle verify give one verdict', () => {
  it('control: the good bundle verifies and loads (so every case below can fail)', async () => {
    const tar = await pack(await fresh());
    const v = await verdict(['bundle', 'verify', tar]);
    expect(v.exitCode, v.message + v.stderr).toBe(0);
    const l = await verdict(['load', tar, '--registry', reg.host, '--plain-http']);
    expect(l.exitCode, l.message + l.stderr).toBe(0);
    expect(await storedRepositories(reg.dataDir)).toEqual(['jetstack/cert-manager-controller', 'library/busybox']);
    await rm(join(reg.dataDir, 'docker'), { recursive: true, force: true });
  });

  for (const [klass, list] of Object.entries(cases)) {
    describe(klass, () => {
      it.each(list)('%s', async (_name, make, expected) => {
        const bundle = await make();
        const [load, verify] = [
          await verdict(['load', bundle, '--registry', reg.host, '--plain-http']),
          await verdict(['bundle', 'verify', bundle]),
        ];
        for (const [who, v] of [
          ['load', load],
          ['bundle verify', verify],
        ] as const) {
          expect(v.exitCode, `${who}: ${v.message}${v.stderr}`).toBe(10);
          expect(v.code, who).toBe('BUNDLE_INVALID');
          expect(v.message, who).toMatch(expected);
          expect(v.stderr, who).not.toMatch(/INTERNAL|This is a bug/);
        }
        // nothing reached the registry
        expect(await storedRepositories(reg.dataDir)).toEqual([]);
      });
    });
  }
});
