// Signed bundles with the real cosign (issue 11.1, 11.2): what sealift signs, `cosign verify-blob`
// accepts (a PEM key from openssl and cosign's own encrypted key pair) and rejects once altered;
// what `cosign sign-blob` signs, sealift accepts. `load --verify-key` refuses an unsigned bundle,
// one signed by another key and one altered after signing (checksums recomputed) with exit 16
// while a recording proxy in front of the registry sees no request and no site dir is written;
// `bundle sign` of an unsigned bundle, then load --verify-key, loads it; without --verify-key,
// load says the origin was not checked. Keys and passwords appear in no output.
import { appendFile, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECKSUMS_FILE, SIGNATURE_FILE } from '../../src/bundle-format/index.ts';
import { packBundle } from '../../src/bundle/pack.ts';
import { craftBundle, resum } from '../support/bundles.ts';
import { runSealift } from '../support/cli.ts';
import { COSIGN_BIN, cosignEnv as offlineCosignEnv } from '../support/cosign-offline.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { seedImages } from '../support/images.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry, storedRepositories, type TestRegistry } from '../support/registry.ts';

const COSIGN = COSIGN_BIN;
const PASSWORD = 'correct-horse-never-printed';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let reg: TestRegistry;
let proxy: FaultProxy;
/** cosign verify-blob looks for Sigstore's TUF root on the internet even with --key: the offline
 *  environment (test/support/cosign-offline.ts) keeps every connection on this machine. */
let cosignEnv: Record<string, string>;
let keys: { pem: string; pemPub: string; cosign: string; cosignPub: string; otherPem: string };
let n = 0;

async function cosign(args: string[]) {
  return execa(COSIGN, args, { reject: false, env: cosignEnv, extendEnv: false, stdin: 'ignore', timeout: 60_000 });
}

const sealift = (args: string[]) =>
  runSealift(args, {
    env: { SEALIFT_CACHE_DIR: join(tmp.path, 'cache'), COSIGN_PASSWORD: PASSWORD },
    timeout: 120_000,
  });

function jsonOf(stdout: string): Record<string, unknown> & { error?: { code: string; message: string } } {
  return JSON.parse(stdout) as Record<string, unknown> & { error?: { code: string; message: string } };
}

/** Every secret a test could leak: the password and a line of each private key's body. */
async function secrets(): Promise<string[]> {
  const lines = await Promise.all(
    [keys.pem, keys.cosign, keys.otherPem].map(async (f) => (await readFile(f, 'utf8')).split('\n')[1] ?? ''),
  );
  return [PASSWORD, ...lines.filter((l) => l.length > 20)];
}

async function expectNoSecrets(...outputs: string[]): Promise<void> {
  for (const s of await secrets()) for (const o of outputs) expect(o).not.toContain(s);
}

beforeAll(async () => {
  tmp = await tempDir('sealift-sign-');
  reg = await startRegistry();
  proxy = await startFaultProxy(reg.host);
  cosignEnv = { ...offlineCosignEnv(tmp.path), COSIGN_PASSWORD: PASSWORD };
  const k = (name: string) => join(tmp.path, name);
  keys = {
    pem: k('bundle.key'),
    pemPub: k('bundle.pub'),
    cosign: k('release.key'),
    cosignPub: k('release.pub'),
    otherPem: k('other.key'),
  };
  for (const [priv, pub] of [
    [keys.pem, keys.pemPub],
    [keys.otherPem, k('other.pub')],
  ] as const) {
    await execa('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', priv]);
    await execa('openssl', ['pkey', '-in', priv, '-pubout', '-out', pub]);
  }
  const gen = await execa(COSIGN, ['generate-key-pair', '--output-key-prefix', 'release'], {
    cwd: tmp.path,
    env: cosignEnv,
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
  });
  expect(gen.exitCode, gen.stderr).toBe(0);
  expect((await readFile(keys.cosign, 'utf8')).split('\n')[0]).toBe('-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----');
}, 120_000);

afterAll(async () => {
  await proxy?.stop();
  await reg?.stop();
  await tmp?.[Symbol.asyncDispose]();
});

async function freshBundle(): Promise<string> {
  return (await craftBundle(join(tmp.path, `b-${n++}`))).root;
}

async function freshTar(): Promise<string> {
  const root = await freshBundle();
  const out = join(tmp.path, `t-${n++}.tar`);
  await packBundle({ root, output: out });
  return out;
}

describe('the real cosign and sealift agree on the signature', () => {
  it.each([
    ['a PEM PKCS#8 key (openssl)', () => keys.pem, () => keys.pemPub],
    ["cosign's encrypted key pair (COSIGN_PASSWORD)", () => keys.cosign, () => keys.cosignPub],
  ])('cosign verify-blob accepts what sealift signed with %s, and rejects it once altered', async (_, priv, pub) => {
    const root = await freshBundle();
    const r = await sealift(['bundle', 'sign', root, '--key', priv(), '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    await expectNoSecrets(r.stdout, r.stderr, await readFile(join(root, SIGNATURE_FILE), 'utf8'));
    const verify = (sums: string) =>
      cosign([
        'verify-blob',
        '--key',
        pub(),
        '--signature',
        join(root, SIGNATURE_FILE),
        '--insecure-ignore-tlog=true',
        sums,
      ]);
    const ok = await verify(join(root, CHECKSUMS_FILE));
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stderr).toContain('Verified OK');
    // one byte of one file changed and the checksums recomputed: cosign refuses the list
    await appendFile(join(root, 'imagelists', 'crafted.txt'), 'x');
    await resum(root);
    const bad = await verify(join(root, CHECKSUMS_FILE));
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toMatch(/invalid signature/);
  });

  it('sealift accepts what cosign sign-blob --tlog-upload=false signed, and loads it with --verify-key', async () => {
    const root = await freshBundle();
    const signed = await cosign([
      'sign-blob',
      '--key',
      keys.cosign,
      '--tlog-upload=false',
      '--output-signature',
      join(root, SIGNATURE_FILE),
      join(root, CHECKSUMS_FILE),
    ]);
    expect(signed.exitCode, signed.stderr).toBe(0);
    const v = await sealift(['bundle', 'verify', root, '--verify-key', keys.cosignPub, '--json']);
    expect(v.exitCode, v.stdout + v.stderr).toBe(0);
    expect(jsonOf(v.stdout).signature).toMatchObject({ signed: true, verified: true, key: keys.cosignPub });
    // the other key does not verify it
    const other = await sealift(['bundle', 'verify', root, '--verify-key', keys.pemPub, '--json']);
    expect(other.exitCode).toBe(16);
    expect(jsonOf(other.stdout).error?.code).toBe('BUNDLE_UNTRUSTED');
    const loaded = await sealift([
      'load',
      root,
      '--registry',
      reg.host,
      '--plain-http',
      '--verify-key',
      keys.cosignPub,
    ]);
    expect(loaded.exitCode, loaded.stdout + loaded.stderr).toBe(0);
    expect(loaded.stdout).toMatch(/origin: signed by the key .*release\.pub .*: verified/);
  });
});

describe('load --verify-key refuses an untrusted bundle before the registry sees a request', () => {
  const unsigned = async () => freshTar();
  const otherKey = async () => {
    const tar = await freshTar();
    expect((await sealift(['bundle', 'sign', tar, '--key', keys.otherPem])).exitCode).toBe(0);
    return tar;
  };
  const alteredAfterSigning = async () => {
    const root = await freshBundle();
    expect((await sealift(['bundle', 'sign', root, '--key', keys.pem])).exitCode).toBe(0);
    await appendFile(join(root, 'imagelists', 'crafted.txt'), 'x');
    await resum(root); // checksums recomputed, the old signature kept
    const tar = join(tmp.path, `t-${n++}.tar`);
    await packBundle({ root, output: tar });
    return tar;
  };
  const alteredNotResummed = async () => {
    const root = await freshBundle();
    expect((await sealift(['bundle', 'sign', root, '--key', keys.pem])).exitCode).toBe(0);
    await appendFile(join(root, 'imagelists', 'crafted.txt'), 'x'); // checksums left as signed
    return root;
  };

  it.each([
    ['unsigned', unsigned, 'BUNDLE_UNTRUSTED', 16, /is not signed/],
    ['signed by another key', otherKey, 'BUNDLE_UNTRUSTED', 16, /does not verify with the key/],
    ['altered after signing, checksums recomputed', alteredAfterSigning, 'BUNDLE_UNTRUSTED', 16, /does not verify/],
    // the signature holds, the checksum check (which covers every file) refuses it
    ['altered after signing, checksums kept', alteredNotResummed, 'BUNDLE_INVALID', 10, /crafted\.txt: sha256 is/],
  ])('%s', async (_, make, code, exit, message) => {
    const bundle = await make();
    const site = join(tmp.path, `site-${n++}`);
    const before = proxy.requests.length;
    const stored = await storedRepositories(reg.dataDir);
    const r = await sealift([
      'load',
      bundle,
      '--registry',
      proxy.host,
      '--plain-http',
      '--verify-key',
      keys.pemPub,
      '--extract-to',
      site,
      '--json',
    ]);
    expect(r.exitCode, r.stdout + r.stderr).toBe(exit);
    const err = jsonOf(r.stdout).error;
    expect(err?.code).toBe(code);
    expect(err?.message).toMatch(message);
    expect(proxy.requests.slice(before)).toEqual([]);
    expect(await storedRepositories(reg.dataDir)).toEqual(stored);
    expect(await stat(site).catch(() => undefined)).toBeUndefined();
    // bundle verify gives the same verdict
    const v = await sealift(['bundle', 'verify', bundle, '--verify-key', keys.pemPub, '--json']);
    expect(v.exitCode).toBe(exit);
    expect(jsonOf(v.stdout).error?.code).toBe(code);
    await expectNoSecrets(r.stdout, r.stderr, v.stdout, v.stderr);
  });
});

describe('bundle --sign-key, bundle sign, then load --verify-key', () => {
  it('bundle sign of an unsigned tar; load without --verify-key says the origin was not checked', async () => {
    const tar = await freshTar();
    const plain = await sealift(['load', tar, '--registry', reg.host, '--plain-http', '--json']);
    expect(plain.exitCode, plain.stderr).toBe(0);
    expect(jsonOf(plain.stdout).origin).toEqual({ signed: false, verified: false });
    const text = await sealift(['load', tar, '--registry', reg.host, '--plain-http']);
    expect(text.stdout).toContain('origin: NOT checked: the bundle is not signed, and no --verify-key was given');

    const signed = await sealift(['bundle', 'sign', tar, '--key', keys.cosign, '--json']);
    expect(signed.exitCode, signed.stdout + signed.stderr).toBe(0);
    expect(jsonOf(signed.stdout)).toMatchObject({ kind: 'tar', replaced: false, key: keys.cosign });
    // the list beside the tar names the rewritten tar
    const sums = await execa('sha256sum', ['-c', `${tar}.sha256`], { cwd: tmp.path, reject: false });
    expect(sums.exitCode, sums.stdout + sums.stderr).toBe(0);
    const inspect = await sealift(['bundle', 'inspect', tar]);
    expect(inspect.stdout).toContain('signature: signed (not verified here: bundle verify --verify-key PUB checks it)');

    const before = proxy.requests.length;
    const r = await sealift([
      'load',
      tar,
      '--registry',
      proxy.host,
      '--plain-http',
      '--verify-key',
      keys.cosignPub,
      '--json',
    ]);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(jsonOf(r.stdout).origin).toMatchObject({ signed: true, verified: true, key: keys.cosignPub });
    expect(proxy.requests.length).toBeGreaterThan(before);
    const again = await sealift(['load', tar, '--registry', reg.host, '--plain-http']);
    expect(again.stdout).toContain('origin: NOT checked: the bundle is signed, and no --verify-key was given');
    await expectNoSecrets(signed.stdout, signed.stderr, r.stdout, r.stderr, await readFile(tar, 'latin1'));
  });

  it('bundle sign of split parts, then load --verify-key of the first part', async () => {
    const root = await freshBundle();
    const out = join(tmp.path, `split-${n++}.tar`);
    const packed = await packBundle({ root, output: out, splitSize: 4096 });
    expect(packed.files.length).toBeGreaterThan(2);
    const first = packed.files[0]!.path;
    const signed = await sealift(['bundle', 'sign', first, '--key', keys.pem, '--json']);
    expect(signed.exitCode, signed.stdout + signed.stderr).toBe(0);
    expect(jsonOf(signed.stdout).kind).toBe('parts');
    const sums = await execa('sha256sum', ['-c', `${out}.sha256`], { cwd: tmp.path, reject: false });
    expect(sums.exitCode, sums.stdout + sums.stderr).toBe(0);
    const r = await sealift(['load', first, '--registry', reg.host, '--plain-http', '--verify-key', keys.pemPub]);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/origin: signed by the key .*bundle\.pub .*: verified/);
  });

  it('bundle --sign-key writes the signature into the tar; the site loads it with --verify-key', async () => {
    const [img] = await seedImages(reg.host, [{ ref: 'docker.io/library/busybox:1.36', layers: [64 << 10] }], {
      workDir: tmp.path,
    });
    const list = join(tmp.path, 'list.txt');
    await writeFile(list, `${img!.testRef}\n`);
    const out = join(tmp.path, 'out');
    const made = await sealift([
      'bundle',
      '--imagelist',
      list,
      '-o',
      out,
      '--plain-http',
      reg.host,
      '--no-site-tools',
      '--sign-key',
      keys.cosign,
      '--json',
    ]);
    expect(made.exitCode, made.stdout + made.stderr).toBe(0);
    expect(jsonOf(made.stdout).signature).toMatchObject({ key: keys.cosign });
    const tar = join(out, 'list.tar');
    const listing = await execa('tar', ['-tf', tar]);
    expect(listing.stdout.split('\n').slice(0, 3)).toEqual([CHECKSUMS_FILE, SIGNATURE_FILE, 'bundle.json']);
    const r = await sealift(['load', tar, '--registry', proxy.host, '--plain-http', '--verify-key', keys.cosignPub]);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/origin: signed by the key .*release\.pub \(sha256:[0-9a-f]{64}\): verified/);
    await expectNoSecrets(made.stdout, made.stderr, await readFile(tar, 'latin1'));

    // a wrong password fails before anything is pulled, naming the key file
    const wrong = await runSealift(
      [
        'bundle',
        '--imagelist',
        list,
        '-o',
        join(tmp.path, 'out2'),
        '--plain-http',
        reg.host,
        '--sign-key',
        keys.cosign,
        '--json',
      ],
      { env: { COSIGN_PASSWORD: 'nope' } },
    );
    expect(wrong.exitCode).toBe(17);
    expect(jsonOf(wrong.stdout).error?.message).toContain(keys.cosign);
    expect(await stat(join(tmp.path, 'out2')).catch(() => undefined)).toBeUndefined();
  });
});
