// The environment keys the platform extras added: models (packaged as modelcar images) and
// apiVersions (helm --api-versions). Bad values are errors naming the file, line and key.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEnvironment } from '../../src/config/index.ts';
import { planReleases } from '../../src/generate/plan.ts';
import { PROJECT_ROOT } from '../../src/tools.ts';
import { tempDir } from '../support/process.ts';

async function withOverlay(text: string) {
  const dir = await tempDir();
  const file = join(dir.path, 'overlay.yaml');
  await writeFile(file, text);
  return { dir, file };
}

describe('models and apiVersions', () => {
  it('airgap lists the iris model (tag v1 by default) and the Prometheus operator API', async () => {
    const env = await loadEnvironment(PROJECT_ROOT, 'airgap');
    expect(env.models).toEqual([{ name: 'sklearn-iris', from: 'models/sklearn-iris', format: 'sklearn', tag: 'v1' }]);
    expect(env.apiVersions).toEqual(['monitoring.coreos.com/v1']);
    expect(env.stackDir).toBe(PROJECT_ROOT);
  });

  it.each([
    ['models:\n  - { name: Iris, from: m, format: sklearn }\n', 'models[0].name', 2],
    ['models:\n  - { name: iris, from: m, format: sklearn, tag: "a b" }\n', 'models[0].tag', 2],
    ['models:\n  - { name: iris, from: m, format: Sk Learn }\n', 'models[0].format', 2],
    ['apiVersions:\n  - monitoring\n', 'apiVersions[0]', 2],
  ])('refuses %j naming %s', async (text, key, line) => {
    const { dir, file } = await withOverlay(text);
    await using _ = dir;
    await expect(loadEnvironment(PROJECT_ROOT, 'airgap', { overlays: [file] })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringContaining(`${file}:${line}: ${key}:`),
    });
  });

  it('writes the models into the modelsKnob path: upstream names before the site, registry names at it', async () => {
    const { dir, file } = await withOverlay('registry: { host: "127.0.0.1:5000", scheme: scoped }\n');
    await using _ = dir;
    const env = await loadEnvironment(PROJECT_ROOT, 'airgap', { overlays: [file] });
    const values = (mode: 'upstream' | 'deploy') =>
      planReleases(env, { mode }).find((p) => p.name === 'platform-extras')!.values as {
        smokeTest: { models: unknown[] };
      };
    expect(values('upstream').smokeTest.models).toEqual([
      {
        name: 'sklearn-iris',
        format: 'sklearn',
        image: 'sealift.invalid/models/sklearn-iris:v1',
        storageUri: 'oci://sealift.invalid/models/sklearn-iris:v1',
      },
    ]);
    expect(values('deploy').smokeTest.models).toEqual([
      {
        name: 'sklearn-iris',
        format: 'sklearn',
        image: '127.0.0.1:5000/sealift.invalid/models/sklearn-iris:v1',
        storageUri: 'oci://127.0.0.1:5000/sealift.invalid/models/sklearn-iris:v1',
      },
    ]);
  });
});
