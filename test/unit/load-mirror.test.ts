// What a mirroring job reads: a plain image list (comments, blank lines, pinned digests) or an
// image lock; a bad line is named by file and line.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isSealiftError } from '../../src/errors.ts';
import { readMirrorList } from '../../src/load/mirror.ts';
import { tempDir } from '../support/process.ts';

const D = `sha256:${'c'.repeat(64)}`;

describe('readMirrorList', () => {
  it('reads references, skipping comments and blank lines, keeping pinned digests', async () => {
    await using tmp = await tempDir();
    const f = join(tmp.path, 'nightly.txt');
    await writeFile(
      f,
      `# nightly mirror\n\ndocker.io/istio/pilot:1.23.2   # control plane\ngcr.io/knative-releases/knative.dev/serving/cmd/queue@${D}\n`,
    );
    expect(await readMirrorList(f)).toEqual([
      { reference: 'docker.io/istio/pilot:1.23.2' },
      { reference: `gcr.io/knative-releases/knative.dev/serving/cmd/queue@${D}`, digest: D },
    ]);
  });

  it('names the file and line of a reference that does not parse', async () => {
    await using tmp = await tempDir();
    const f = join(tmp.path, 'bad.txt');
    await writeFile(f, 'docker.io/istio/pilot:1.23.2\nquay.io/KServe/router:v0.15.2\n');
    const err = await readMirrorList(f).catch((e: unknown) => e);
    expect(isSealiftError(err) && err.code).toBe('REF_INVALID');
    expect((err as Error).message).toContain(`(${f}:2)`);
  });

  it('reads an image lock with its digests', async () => {
    await using tmp = await tempDir();
    const f = join(tmp.path, 'airgap.lock.json');
    await writeFile(
      f,
      JSON.stringify({
        version: 1,
        environment: 'airgap',
        images: [
          { reference: 'docker.io/istio/pilot:1.23.2', releases: ['istiod'], why: [], digest: D },
          { reference: 'quay.io/jetstack/cert-manager-webhook:v1.16.1', releases: [], why: [] },
        ],
      }),
    );
    expect(await readMirrorList(f)).toEqual([
      { reference: 'docker.io/istio/pilot:1.23.2', digest: D },
      { reference: 'quay.io/jetstack/cert-manager-webhook:v1.16.1' },
    ]);
  });

  it('refuses an empty list', async () => {
    await using tmp = await tempDir();
    const f = join(tmp.path, 'empty.txt');
    await writeFile(f, '# nothing yet\n');
    await expect(readMirrorList(f)).rejects.toThrow(/the image list .* names no images/);
  });
});
