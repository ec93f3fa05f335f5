// `npm run build:image [-- --out dist/image --platform linux/amd64 --source URL --json]`: the
// sealift container image, built by sealift itself (src/container-image) from the single
// executables (scripts/build-exe.ts, built or brought up to date first) into an OCI layout with
// an index of linux/amd64 and linux/arm64. Deterministic: the creation time is SOURCE_DATE_EPOCH,
// else the commit's time, so the same commit gives the same digest on any host with the same
// libraries. `--push HOST[:PORT]/REPO[:TAG]` (`--plain-http` for a plain-HTTP registry) pushes it
// with sealift's own copy engine; skopeo reads it too (`skopeo copy --all oci:dist/image:<version> docker://...`).
// The arm64 base takes its libraries from Debian's cross packages (/usr/aarch64-linux-gnu/lib:
// libc6-arm64-cross, libstdc++6-arm64-cross), the amd64 one from this host.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildSealiftImage, pushSealiftImage } from '../src/container-image/index.ts';
import { ERROR_CODES, isSealiftError } from '../src/errors.ts';
import { PROJECT_ROOT } from '../src/runtime.ts';
import { redactUrl } from '../src/redact.ts';
import { buildExecutables, EXE_PLATFORMS, gitCommit } from './build-exe.ts';

const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

const git = (...a: string[]) =>
  execFileSync('git', ['-C', PROJECT_ROOT, ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();

/** SOURCE_DATE_EPOCH (reproducible-builds.org), else the commit's time. */
function creationTime(): Date {
  const epoch = process.env.SOURCE_DATE_EPOCH ?? git('log', '-1', '--format=%ct');
  if (!/^\d+$/.test(epoch)) throw new Error(`SOURCE_DATE_EPOCH must be seconds since 1970, not "${epoch}"`);
  return new Date(Number(epoch) * 1000);
}

/** --source, else package.json's repository, else the git remote (credentials never kept). */
function sourceUrl(flag: string | undefined, pkg: { repository?: string | { url?: string } }): string | undefined {
  const repo = typeof pkg.repository === 'string' ? pkg.repository : pkg.repository?.url;
  let remote: string | undefined;
  try {
    remote = git('remote', 'get-url', 'origin') || undefined;
  } catch {
    remote = undefined;
  }
  const url = flag ?? repo ?? remote;
  return url ? redactUrl(url).replace(/^git\+/, '') : undefined;
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      platform: { type: 'string', multiple: true },
      source: { type: 'string' },
      push: { type: 'string' },
      'plain-http': { type: 'boolean' },
      json: { type: 'boolean' },
    },
  });
  const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as {
    version: string;
    license?: string;
    repository?: string | { url?: string };
  };
  const platforms = values.platform?.length ? values.platform : [...EXE_PLATFORMS];
  const executables = await buildExecutables(platforms);
  const source = sourceUrl(values.source, pkg);
  if (!source) process.stderr.write('build-image: no --source, repository or git remote: the image names no source\n');
  const image = await buildSealiftImage({
    out: resolve(values.out ?? join(PROJECT_ROOT, 'dist', 'image')),
    platforms: executables.map((e) => ({ platform: e.platform, executable: e.file })),
    caCertificates: CA_BUNDLE,
    version: pkg.version,
    revision: gitCommit(),
    ...(source ? { source } : {}),
    ...(pkg.license ? { licenses: pkg.license } : {}),
    created: creationTime(),
    onEvent: (e) => {
      if (e.type === 'phase') process.stderr.write(`build-image: ${e.name}\n`);
    },
  });
  const pushed = values.push
    ? await pushSealiftImage(image, values.push, { plainHttp: values['plain-http'] === true }).catch((e: unknown) => {
        if (!isSealiftError(e)) throw e;
        process.stderr.write(`error[${e.code}]: ${e.message}\n${e.hint ? `  hint: ${e.hint}\n` : ''}`);
        process.exit(ERROR_CODES[e.code].exit);
      })
    : undefined;
  const rel = relative(process.cwd(), image.layout);
  const out = rel && !rel.startsWith('..') ? rel : image.layout;
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({
        layout: image.layout,
        tag: image.tag,
        digest: image.index.digest,
        ...(pushed ? { pushed: { reference: values.push, digest: pushed } } : {}),
        annotations: image.annotations,
        platforms: image.images.map((i) => ({
          platform: i.platform,
          digest: i.manifest.digest,
          layers: i.layers.map((l) => ({ digest: l.digest, size: l.size })),
          libraries: [i.linked.interpreter.path, ...i.linked.libraries.map((l) => l.soname)],
        })),
      })}\n`,
    );
  } else {
    process.stdout.write(
      `${image.index.digest}  ${out}:${image.tag}  (${image.images.map((i) => i.platform).join(', ')})\n`,
    );
    if (pushed) process.stdout.write(`pushed: ${values.push} ${pushed}\n`);
    else
      process.stdout.write(
        `push: node scripts/build-image.ts --push REGISTRY/sealift/sealift:${image.tag}, or skopeo copy --all oci:${out}:${image.tag} docker://REGISTRY/sealift/sealift:${image.tag}\n`,
      );
  }
}
