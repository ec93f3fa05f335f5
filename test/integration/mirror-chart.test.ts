// deploy/charts/sealift-mirror rendered by real helm: an Indexed Job (or CronJob) whose pods run
// `sealift mirror --shards N` with the index from JOB_COMPLETION_INDEX. The rendered pod command
// line is then run as the 4 pods would run it, against a real registry.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { PROJECT_ROOT, requireTool } from '../../src/tools.ts';
import { seedImages } from '../support/images.ts';
import { tempDir } from '../support/process.ts';
import { startRegistry } from '../support/registry.ts';
import { sealift, skopeoDigest } from './load-fixtures.ts';

const CHART = join(PROJECT_ROOT, 'deploy', 'charts', 'sealift-mirror');
type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function render(dir: string, values: string): Promise<Doc[]> {
  const file = join(dir, `values-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(file, values);
  const r = await execa(requireTool('helm'), ['template', 'nightly', CHART, '-f', file]);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Doc)
    .filter(Boolean);
}

/** every `image:` value anywhere in the manifests */
function imagesIn(v: unknown): string[] {
  if (Array.isArray(v)) return v.flatMap(imagesIn);
  if (v && typeof v === 'object')
    return Object.entries(v).flatMap(([k, x]) => (k === 'image' && typeof x === 'string' ? [x] : imagesIn(x)));
  return [];
}

const FOUR = (to: string, list: string, extra = '', sourcePlainHttp: string[] = []) => `
image: { registry: "10.61.3.31:35000", repository: platform/sealift, tag: "0.1.0" }
shards: 4
backoffLimitPerIndex: 3
mirror: { to: "${to}", plainHttp: true, sourcePlainHttp: ${JSON.stringify(sourcePlainHttp)} }
imagelist: { content: ${JSON.stringify(list)} }
credentials: { secretName: mirror-auth }
${extra}`;

describe('chart sealift-mirror', () => {
  it('lints, and renders an Indexed Job of 4 shards with the secret as a file and a locked-down pod', async () => {
    await using tmp = await tempDir();
    const values = join(tmp.path, 'four.yaml');
    await writeFile(values, FOUR('10.61.3.31:35000', 'docker.io/istio/pilot:1.23.2\n'));
    const lint = await execa(requireTool('helm'), ['lint', CHART, '-f', values], { reject: false });
    expect(lint.exitCode, lint.stdout + lint.stderr).toBe(0);

    const docs = await render(tmp.path, FOUR('10.61.3.31:35000', 'docker.io/istio/pilot:1.23.2\n'));
    const job = docs.find((d) => d.kind === 'Job') as Doc;
    expect(job.spec).toMatchObject({
      completionMode: 'Indexed',
      completions: 4,
      parallelism: 4,
      backoffLimitPerIndex: 3,
    });
    const pod = job.spec.template.spec;
    const [c] = pod.containers;
    expect(c.args.slice(0, 7)).toEqual([
      'mirror',
      '--imagelist',
      '/config/images.txt',
      '--to',
      '10.61.3.31:35000',
      '--shards',
      '4',
    ]);
    expect(c.args).not.toContain('--shard');
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(c.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(c.resources.requests).toBeDefined();
    // credentials: a mounted file DOCKER_CONFIG points to, never a value in args or env
    expect(c.env).toContainEqual({ name: 'DOCKER_CONFIG', value: '/docker' });
    expect(pod.volumes).toContainEqual({
      name: 'docker-config',
      secret: { secretName: 'mirror-auth', items: [{ key: 'config.json', path: 'config.json' }] },
    });
    expect(c.env.every((e: Doc) => 'value' in e && !/auth|pass|token/i.test(String(e.value)))).toBe(true);
    const cm = docs.find((d) => d.kind === 'ConfigMap') as Doc;
    expect(pod.volumes).toContainEqual({ name: 'imagelist', configMap: { name: cm.metadata.name } });
    expect(cm.data['images.txt']).toBe('docker.io/istio/pilot:1.23.2\n');
    // the airgap check: the only registry the manifests name is the one given in values
    expect(imagesIn(docs)).toEqual(['10.61.3.31:35000/platform/sealift:0.1.0']);

    const cron = await render(tmp.path, FOUR('10.61.3.31:35000', 'a/b:1\n', 'schedule: "0 3 * * *"'));
    const cj = cron.find((d) => d.kind === 'CronJob') as Doc;
    expect(cron.some((d) => d.kind === 'Job')).toBe(false);
    expect(cj.spec.schedule).toBe('0 3 * * *');
    expect(cj.spec.jobTemplate.spec).toMatchObject({ completionMode: 'Indexed', completions: 4, parallelism: 4 });
  });

  it('sealift images scan of the chart finds its one image, in the registry of the values', async () => {
    await using tmp = await tempDir();
    const values = join(tmp.path, 'four.yaml');
    await writeFile(values, FOUR('10.61.3.31:35000', 'docker.io/istio/pilot:1.23.2\n'));
    const r = await sealift(['images', 'scan', CHART, '-f', values, '--json']);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).images.map((i: { reference: string }) => i.reference)).toEqual([
      '10.61.3.31:35000/platform/sealift:0.1.0',
    ]);
  });

  it('a values file without a target or list fails to render, naming the value', async () => {
    await using tmp = await tempDir();
    const file = join(tmp.path, 'bad.yaml');
    await writeFile(file, 'imagelist: { content: "a/b:1" }\n');
    const r = await execa(requireTool('helm'), ['template', 'x', CHART, '-f', file], { reject: false });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/mirror\.to/);
  });

  it("the rendered pods' command line, run as the 4 indexes, mirrors the whole list", async () => {
    await using tmp = await tempDir();
    await using upstream = await startRegistry();
    await using site = await startRegistry();
    const seeded = await seedImages(
      upstream.host,
      Array.from({ length: 6 }, (_, i) => ({
        ref: `docker.io/apps/app${i}:v1`,
        base: 'distroless',
        baseLayers: [16 << 10],
        layers: [4 << 10],
      })),
      { workDir: tmp.path },
    );
    const list = seeded.map((s) => s.testRef).join('\n') + '\n';
    const docs = await render(tmp.path, FOUR(site.host, list, '', [upstream.host]));
    const cm = docs.find((d) => d.kind === 'ConfigMap') as Doc;
    const c = (docs.find((d) => d.kind === 'Job') as Doc).spec.template.spec.containers[0];
    const configFile = join(tmp.path, 'images.txt');
    await writeFile(configFile, cm.data['images.txt']);
    await writeFile(join(tmp.path, 'config.json'), '{"auths":{}}\n');
    const args = (c.args as string[]).map((a) => (a === '/config/images.txt' ? configFile : a));
    const runs = await Promise.all(
      [0, 1, 2, 3].map((i) => sealift(args, { JOB_COMPLETION_INDEX: String(i), DOCKER_CONFIG: tmp.path })),
    );
    for (const r of runs) expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const total = runs.map((r) => JSON.parse(r.stdout).shard.images as number).reduce((a, b) => a + b, 0);
    expect(total).toBe(6);
    for (const s of seeded) expect(await skopeoDigest(`${site.host}/${s.repository}:${s.tag}`)).toBe(s.digest);
  }, 90_000);
});
