// The bundle reader (src/bundle-format) against hand-made archives: good ones (PAX paths, split
// parts) and malicious or damaged ones, each of which must be refused with a message naming the entry.
import { createHash } from 'node:crypto';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Header, Pax } from 'tar';
import { describe, expect, it } from 'vitest';
import { isSealiftError } from '../../src/errors.ts';
import {
  checkBundle,
  checkBundleChecksums,
  openBundleArchive,
  type BundleArchive,
} from '../../src/bundle-format/index.ts';
import { packBundle } from '../../src/bundle/pack.ts';
import { craftBundle, resum } from '../support/bundles.ts';
import { tempDir } from '../support/process.ts';

type EntrySpec = {
  path: string;
  body?: string | Buffer;
  type?: string;
  linkpath?: string;
  pax?: Record<string, string>;
};

function pad(b: Buffer): Buffer {
  const rem = b.length % 512;
  return rem === 0 ? b : Buffer.concat([b, Buffer.alloc(512 - rem)]);
}

function entry(spec: EntrySpec): Buffer {
  const body = spec.body === undefined ? Buffer.alloc(0) : Buffer.from(spec.body);
  const out: Buffer[] = [];
  if (spec.pax) {
    const pax = new Pax({
      path: spec.pax.path ?? spec.path,
      ...(spec.pax.linkpath ? { linkpath: spec.pax.linkpath } : {}),
    });
    out.push(pax.encode());
  }
  const h = new Header({
    path: spec.path,
    mode: 0o644,
    size: spec.type && spec.type !== 'File' ? 0 : body.length,
    type: (spec.type ?? 'File') as 'File',
    linkpath: spec.linkpath ?? '',
    mtime: new Date(0),
    uid: 0,
    gid: 0,
    uname: '',
    gname: '',
  });
  h.encode();
  out.push(h.block as Buffer);
  if (!spec.type || spec.type === 'File') out.push(pad(body));
  return Buffer.concat(out);
}

const END = Buffer.alloc(1024);
const tarOf = (...specs: EntrySpec[]) => Buffer.concat([...specs.map(entry), END]);

async function expectRefused(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected the archive to be refused').toBeDefined();
  expect(isSealiftError(err) && err.code).toBe('BUNDLE_INVALID');
  expect((err as Error).message).toMatch(pattern);
}

async function readAll(a: BundleArchive, path: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of a.open(path)) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

describe('tar index', () => {
  it('indexes files and reads each one by offset, preferring the PAX path', async () => {
    await using tmp = await tempDir();
    const long = `images/blobs/sha256/${'a'.repeat(64)}/${'deep/'.repeat(30)}file`;
    const file = join(tmp.path, 'b.tar');
    await writeFile(
      file,
      tarOf(
        { path: './bundle.json', body: '{"version":1}' },
        { path: 'images/', type: 'Directory' },
        { path: 'images/one', body: 'x'.repeat(1500) },
        // the ustar name is a harmless stand-in; PAX carries the real, long path
        { path: 'PaxHeader-stand-in', body: 'long one', pax: { path: long } },
      ),
    );
    await using_(await openBundleArchive(file), async (a) => {
      expect([...a.entries.keys()]).toEqual(['bundle.json', 'images', 'images/one', long]);
      expect(await readAll(a, 'bundle.json')).toBe('{"version":1}');
      expect(await readAll(a, 'images/one')).toBe('x'.repeat(1500));
      expect(await readAll(a, long)).toBe('long one');
      expect(a.lookup('PaxHeader-stand-in')).toBeUndefined();
    });
  });

  it('reads split parts as one archive, with a blob across a part boundary', async () => {
    await using tmp = await tempDir();
    const big = Buffer.alloc(5000, 7);
    const whole = tarOf(
      { path: 'bundle.json', body: 'first' },
      { path: 'big', body: big },
      { path: 'c', body: 'last' },
    );
    // cut mid-header and mid-blob
    const cuts = [700, 3000, 6000];
    let prev = 0;
    const bounds = [...cuts, whole.length];
    for (let i = 0; i < bounds.length; i++) {
      await writeFile(join(tmp.path, `b.tar.part-00${i}`), whole.subarray(prev, bounds[i]));
      prev = bounds[i] as number;
    }
    await using_(await openBundleArchive(join(tmp.path, 'b.tar.part-000')), async (a) => {
      expect(a.kind).toBe('parts');
      const chunks: Buffer[] = [];
      for await (const c of a.open('big')) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).equals(big)).toBe(true);
      expect(await readAll(a, 'c')).toBe('last');
    });
    // a missing middle part is named
    const { rm } = await import('node:fs/promises');
    await rm(join(tmp.path, 'b.tar.part-001'));
    await expectRefused(openBundleArchive(join(tmp.path, 'b.tar.part-000')), /part 1 of the split bundle is missing/);
  });

  it('asks for the first part when given a later one', async () => {
    await using tmp = await tempDir();
    await writeFile(join(tmp.path, 'b.tar.part-000'), tarOf({ path: 'a', body: 'x' }));
    await writeFile(join(tmp.path, 'b.tar.part-001'), Buffer.alloc(0));
    const err = await openBundleArchive(join(tmp.path, 'b.tar.part-001')).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/part 1 of a split bundle/);
    expect(isSealiftError(err) && err.hint).toMatch(/b\.tar\.part-000/);
  });

  const malicious: [string, EntrySpec[], RegExp][] = [
    [
      'path traversal',
      [{ path: '../../etc/cron.d/x', body: 'evil' }],
      /"\.\.\/\.\.\/etc\/cron\.d\/x" has "\.\." in its path/,
    ],
    ['traversal in the middle', [{ path: 'images/../../x', body: 'evil' }], /has "\.\." in its path/],
    ['absolute path', [{ path: '/etc/passwd', body: 'evil' }], /"\/etc\/passwd" has an absolute path/],
    [
      'traversal hidden in a PAX path',
      [{ path: 'harmless', body: 'evil', pax: { path: '../escape' } }],
      /"\.\.\/escape" has "\.\." in its path/,
    ],
    [
      'symlink escape',
      [{ path: 'images/blobs', type: 'SymbolicLink', linkpath: '../../../etc' }],
      /"images\/blobs" is a symlink \(-> "\.\.\/\.\.\/\.\.\/etc"\); a bundle holds no links/,
    ],
    [
      'absolute symlink',
      [{ path: 'x', type: 'SymbolicLink', linkpath: '/etc/shadow' }],
      /"x" is a symlink \(-> "\/etc\/shadow"\); a bundle holds no links/,
    ],
    [
      'hard link escape',
      [{ path: 'x', type: 'Link', linkpath: '../outside' }],
      /"x" is a hard link \(-> "\.\.\/outside"\); a bundle holds no links/,
    ],
    [
      'hard link to nothing',
      [{ path: 'x', type: 'Link', linkpath: 'nothing' }],
      /"x" is a hard link \(-> "nothing"\); a bundle holds no links/,
    ],
    ['character device', [{ path: 'dev/null', type: 'CharacterDevice' }], /"dev\/null" is a device file/],
    ['block device', [{ path: 'sda', type: 'BlockDevice' }], /"sda" is a device file/],
    ['fifo', [{ path: 'pipe', type: 'FIFO' }], /"pipe" is a FIFO/],
    [
      'duplicate path',
      [
        { path: 'bundle.json', body: 'a' },
        { path: './bundle.json', body: 'b' },
      ],
      /"bundle\.json" appears twice/,
    ],
  ];

  it.each(malicious)('refuses %s', async (_name, specs, pattern) => {
    await using tmp = await tempDir();
    const file = join(tmp.path, 'evil.tar');
    await writeFile(file, tarOf({ path: 'bundle.json', body: '{}' }, ...specs));
    await expectRefused(openBundleArchive(file), pattern);
  });

  it('refuses a tar truncated inside a file, and one without its end marker', async () => {
    await using tmp = await tempDir();
    const whole = tarOf({ path: 'a', body: 'x'.repeat(3000) }, { path: 'b', body: 'y' });
    const file = join(tmp.path, 'cut.tar');
    await writeFile(file, whole.subarray(0, 2048));
    await expectRefused(openBundleArchive(file), /truncated: entry "a" needs 3000 bytes/);
    await writeFile(file, whole.subarray(0, whole.length - 1024));
    await expectRefused(openBundleArchive(file), /truncated: it ends at byte \d+ without the end-of-archive marker/);
  });

  it('refuses a damaged header', async () => {
    await using tmp = await tempDir();
    const t = tarOf({ path: 'a', body: 'hello' }, { path: 'b', body: 'world' });
    t[1024 + 3] = 0x41; // a byte of the second header's name
    const file = join(tmp.path, 'bad.tar');
    await writeFile(file, t);
    await expectRefused(openBundleArchive(file), /header at byte 1024 is damaged/);
  });

  it('refuses gzip with a hint to decompress', async () => {
    await using tmp = await tempDir();
    const file = join(tmp.path, 'b.tar.gz');
    await writeFile(file, Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]));
    await expectRefused(openBundleArchive(file), /gzip-compressed/);
  });
});

describe('extracted directory', () => {
  it("reads what the tar holds: content dotfiles count, the writer's work files do not", async () => {
    await using tmp = await tempDir();
    const b = await craftBundle(join(tmp.path, 'b'));
    await mkdir(join(b.root, 'values'), { recursive: true });
    await writeFile(join(b.root, 'values', '.helmignore'), 'content\n');
    await resum(b.root);
    await mkdir(join(b.root, 'images', '.ingest'), { recursive: true });
    await writeFile(join(b.root, 'images', '.ingest', 'x.partial'), 'left by a killed run');
    await writeFile(join(b.root, '.bundle.json.1234.tmp'), 'temp');
    await packBundle({ root: b.root, output: join(tmp.path, 'b.tar') });
    for (const where of [b.root, join(tmp.path, 'b.tar')]) {
      await using_(await openBundleArchive(where), async (a) => {
        expect(a.lookup('values/.helmignore')?.size).toBe(8);
        expect(a.lookup('images/.ingest/x.partial')).toBeUndefined();
        expect((await checkBundle(a)).images.map((i) => i.source)).toEqual(b.images.map((i) => i.reference));
      });
    }
  });

  it('refuses a symlink, wherever it points', async () => {
    await using tmp = await tempDir();
    await mkdir(join(tmp.path, 'b', 'images'), { recursive: true });
    await writeFile(join(tmp.path, 'secret'), 's');
    await writeFile(join(tmp.path, 'b', 'bundle.json'), '{}');
    await symlink('../../secret', join(tmp.path, 'b', 'images', 'x'));
    await expectRefused(
      openBundleArchive(join(tmp.path, 'b')),
      /"images\/x" is a symlink \(-> "\.\.\/\.\.\/secret"\); a bundle holds no links/,
    );
  });
});

describe('checksums', () => {
  const blob = Buffer.from('layer bytes');
  const blobPath = `images/blobs/sha256/${sha(blob)}`;
  const good = (extra: EntrySpec[] = [], blobBody: Buffer = blob, listExtra = '') =>
    tarOf(
      { path: 'checksums.sha256', body: `${sha('{}')}  bundle.json\n${sha(blob)}  ${blobPath}\n${listExtra}` },
      { path: 'bundle.json', body: '{}' },
      { path: blobPath, body: blobBody },
      ...extra,
    );

  it('accepts a bundle that matches', async () => {
    await using tmp = await tempDir();
    const file = join(tmp.path, 'b.tar');
    await writeFile(file, good());
    await using_(await openBundleArchive(file), async (a) => {
      expect(await checkBundleChecksums(a)).toEqual({ files: 2, bytes: blob.length + 2 });
    });
  });

  it('names a modified blob, an unlisted file and a missing one', async () => {
    await using tmp = await tempDir();
    const file = join(tmp.path, 'b.tar');
    const tampered = Buffer.from('layer bytez');
    await writeFile(
      file,
      good([{ path: 'extra.txt', body: 'sneaked in' }], tampered, `${sha('gone')}  charts/gone.tgz\n`),
    );
    await using_(await openBundleArchive(file), async (a) => {
      const err = await checkBundleChecksums(a).catch((e: unknown) => e);
      expect(isSealiftError(err) && err.code).toBe('BUNDLE_INVALID');
      const msg = (err as Error).message;
      expect(msg).toContain(`${blobPath}: sha256 is ${sha(tampered)}, checksums.sha256 says ${sha(blob)}`);
      expect(msg).toContain('extra.txt: in the bundle but not listed');
      expect(msg).toContain('charts/gone.tgz: listed in checksums.sha256 but not in the bundle');
    });
  });
});

async function using_<T>(a: BundleArchive, f: (a: BundleArchive) => Promise<T>): Promise<T> {
  try {
    return await f(a);
  } finally {
    await a.close();
  }
}
