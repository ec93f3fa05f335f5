// Knob inference, shape by shape, on small charts written here and rendered by real helm: the
// values it infers, and what `helm template` then pulls with them.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanTarget, type ScanResult } from '../../src/images/index.ts';
import type { NamingScheme } from '../../src/oci/naming.ts';
import { CONTAINERS_TEMPLATE } from '../support/list-chart.ts';
import { tempDir } from '../support/process.ts';

const REG = '10.61.3.31:35000';
const D = `sha256:${'ab'.repeat(32)}`;
let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir('sealift-knobs-unit-');
});
afterAll(async () => {
  await tmp?.[Symbol.asyncDispose]();
});

const pod = (name: string, image: string) =>
  `apiVersion: v1\nkind: Pod\nmetadata: { name: ${name} }\nspec: { containers: [{ name: c, image: ${image} }] }\n---\n`;

/** A chart directory: Chart.yaml, values.yaml, one template file, optional subcharts. */
async function chart(
  name: string,
  values: string,
  template: string,
  subcharts: { dir: string; chart: string; values: string; template: string }[] = [],
  deps = '',
): Promise<string> {
  const dir = join(tmp.path, name);
  await mkdir(join(dir, 'templates'), { recursive: true });
  await writeFile(join(dir, 'Chart.yaml'), `apiVersion: v2\nname: ${name}\nversion: 0.1.0\n${deps}`);
  await writeFile(join(dir, 'values.yaml'), values);
  await writeFile(join(dir, 'templates', 'all.yaml'), template);
  for (const s of subcharts) {
    const sd = join(dir, 'charts', s.dir);
    await mkdir(join(sd, 'templates'), { recursive: true });
    await writeFile(join(sd, 'Chart.yaml'), `apiVersion: v2\nname: ${s.chart}\nversion: 0.1.0\n`);
    await writeFile(join(sd, 'values.yaml'), s.values);
    await writeFile(join(sd, 'templates', 'all.yaml'), s.template);
  }
  return dir;
}

async function infer(dir: string, scheme: NamingScheme = 'host-swap', rulesDirs?: string[]): Promise<ScanResult> {
  return scanTarget({
    target: dir,
    airgap: { host: REG, scheme },
    kubeVersion: 'v1.28.6',
    ...(rulesDirs ? { rulesDirs } : {}),
  });
}

/** What the chart pulls once rendered with the inferred values. */
async function after(dir: string, r: ScanResult): Promise<string[]> {
  const values = join(tmp.path, `${dir.split('/').pop()}-airgap.json`);
  await writeFile(values, JSON.stringify(r.airgapValues));
  return (await scanTarget({ target: dir, valuesFiles: [values], kubeVersion: 'v1.28.6' })).images;
}

/** a pod whose registry is global.imageRegistry, else its own (bitnami's way) */
const globalTpl = (k: string) =>
  pod(k, `"{{ .Values.global.imageRegistry | default .Values.${k}.registry }}/{{ .Values.${k}.repository }}:1"`);

describe('knob shapes', () => {
  it('a full image value (`image: repo:tag`), tag kept', async () => {
    const dir = await chart('full', 'image: quay.io/org/app:1.2\n', pod('p', '{{ .Values.image }}'));
    const r = await infer(dir);
    expect(r.airgapValues).toEqual({ image: `${REG}/org/app:1.2` });
    expect(await after(dir, r)).toEqual([`${REG}/org/app:1.2`]);
  });

  it('repository + tag, and registry + repository + tag + digest', async () => {
    const dir = await chart(
      'split',
      `web: { image: { repository: ghcr.io/org/web, tag: v3 } }\ndb: { image: { registry: docker.io, repository: bitnami/postgresql, tag: "16", digest: "${D}" } }\n`,
      pod('web', '"{{ .Values.web.image.repository }}:{{ .Values.web.image.tag }}"') +
        pod(
          'db',
          '"{{ .Values.db.image.registry }}/{{ .Values.db.image.repository }}:{{ .Values.db.image.tag }}@{{ .Values.db.image.digest }}"',
        ),
    );
    const r = await infer(dir);
    expect(r.airgapValues).toEqual({
      web: { image: { repository: `${REG}/org/web` } },
      db: { image: { registry: REG } },
    });
    expect((await after(dir, r)).sort()).toEqual([`${REG}/bitnami/postgresql:16@${D}`, `${REG}/org/web:v3`]);
    // scoped: the registry knob keeps the upstream host as the first path component
    expect((await infer(dir, 'scoped')).airgapValues).toEqual({
      web: { image: { repository: `${REG}/ghcr.io/org/web` } },
      db: { image: { registry: `${REG}/docker.io` } },
    });
  });

  it('image + version, where the version may be a digest (joined with @)', async () => {
    const dir = await chart(
      'version',
      `tool: { image: org/tool, version: "${D}" }\nagent: { image: org/agent, version: v1 }\n`,
      `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: cfg }\ndata:\n  tool: '{"image": "{{ .Values.tool.image }}", "version": "{{ .Values.tool.version }}"}'\n---\n` +
        pod('agent', '"{{ .Values.agent.image }}:{{ .Values.agent.version }}"'),
    );
    const r = await infer(dir);
    expect(r.images.sort()).toEqual([`docker.io/org/agent:v1`, `docker.io/org/tool@${D}`]);
    expect(r.airgapValues).toEqual({ tool: { image: `${REG}/org/tool` }, agent: { image: `${REG}/org/agent` } });
    expect((await after(dir, r)).sort()).toEqual([`${REG}/org/agent:v1`, `${REG}/org/tool@${D}`]);
  });

  it('a hub prefix the chart appends names to, written without a host', async () => {
    const dir = await chart(
      'hub',
      'hub: istio\ntag: 1.23.2\n',
      pod('a', '"{{ .Values.hub }}/pilot:{{ .Values.tag }}"') +
        pod('b', '"{{ .Values.hub }}/proxyv2:{{ .Values.tag }}"'),
    );
    const r = await infer(dir);
    expect(r.knobs!.knobs.map((k) => [k.path, k.upstream])).toEqual([['hub', 'istio/']]);
    expect((await after(dir, r)).sort()).toEqual([`${REG}/istio/pilot:1.23.2`, `${REG}/istio/proxyv2:1.23.2`]);
  });

  it('one global registry override is preferred over one knob per image', async () => {
    const dir = await chart(
      'global',
      'global: { imageRegistry: "" }\na: { registry: docker.io, repository: org/a }\nb: { registry: docker.io, repository: org/b }\n',
      globalTpl('a') + globalTpl('b'),
    );
    const r = await infer(dir, 'scoped');
    expect(r.airgapValues).toEqual({ global: { imageRegistry: `${REG}/docker.io` } });
    expect(r.knobs!.renders).toBe(1);
    expect((await after(dir, r)).sort()).toEqual([`${REG}/docker.io/org/a:1`, `${REG}/docker.io/org/b:1`]);
  });

  it('...but not when it cannot move every image it claims (scoped, two upstream hosts): one render more', async () => {
    const dir = await chart(
      'global-mixed',
      'global: { imageRegistry: "" }\na: { registry: docker.io, repository: org/a }\nb: { registry: quay.io, repository: org/b }\n',
      globalTpl('a') + globalTpl('b'),
    );
    const r = await infer(dir, 'scoped');
    expect(r.airgapValues).toEqual({ a: { registry: `${REG}/docker.io` }, b: { registry: `${REG}/quay.io` } });
    expect(r.knobs!.renders).toBe(2);
    expect((await after(dir, r)).sort()).toEqual([`${REG}/docker.io/org/a:1`, `${REG}/quay.io/org/b:1`]);
  });

  it('a subchart image under its alias', async () => {
    const dir = await chart(
      'parent',
      'cache: { image: { tag: "7.4" } }\n',
      '',
      [
        {
          dir: 'kv',
          chart: 'kv',
          values: 'image: { repository: docker.io/library/redis, tag: "7.2" }\n',
          template: pod('kv', '"{{ .Values.image.repository }}:{{ .Values.image.tag }}"'),
        },
      ],
      'dependencies:\n  - { name: kv, version: 0.1.0, alias: cache }\n',
    );
    const r = await infer(dir);
    expect(r.airgapValues).toEqual({ cache: { image: { repository: `${REG}/library/redis` } } });
    expect(await after(dir, r)).toEqual([`${REG}/library/redis:7.4`]);
  });

  it('an image an operator assembles from its custom resource fields (an inject rule)', async () => {
    const rules = join(tmp.path, 'operator-rules');
    await mkdir(rules, { recursive: true });
    await writeFile(
      join(rules, 'op.yaml'),
      'rules:\n  - id: op-operand\n    description: the operator runs {registry}/{name}:{version}\n    match: { kind: Operand }\n    inject: { from: spec, image: "{registry}/{name}:{version}" }\n',
    );
    const dir = await chart(
      'operator',
      'operand: { registry: quay.io, version: "2.0" }\n',
      'apiVersion: example.com/v1\nkind: Operand\nmetadata: { name: x }\nspec: { registry: {{ .Values.operand.registry }}, name: org/operand, version: "{{ .Values.operand.version }}" }\n',
    );
    const r = await infer(dir, 'host-swap', [rules]);
    expect(r.images).toEqual(['quay.io/org/operand:2.0']);
    expect(r.airgapValues).toEqual({ operand: { registry: REG } });
  });

  it('what no value moves is knob-less, with the reason and the hosts.toml fallback', async () => {
    const dir = await chart(
      'fixed',
      'app: { image: ghcr.io/org/app:1 }\n',
      pod('a', '{{ .Values.app.image }}') + pod('b', 'docker.io/library/busybox:1.36'),
    );
    const r = await infer(dir);
    expect(r.airgapValues).toEqual({ app: { image: `${REG}/org/app:1` } });
    expect(r.knobs!.knobless).toEqual([
      {
        reference: 'docker.io/library/busybox:1.36',
        reason: expect.stringContaining('no value of the chart holds its registry'),
      },
    ]);
    const busybox = r.findings.find((f) => f.reference === 'docker.io/library/busybox:1.36')!;
    expect(busybox.knobless?.description).toContain('certs.d/docker.io/hosts.toml');
    expect((await after(dir, r)).sort()).toEqual([`${REG}/org/app:1`, 'docker.io/library/busybox:1.36']);
  });
});

describe('knob paths through list items', () => {
  it('`containers: [{image}]`: each item found by its path, the list written whole with only the images changed', async () => {
    const dir = await chart(
      'list-full',
      `containers:\n  - { name: app, image: docker.io/acme/web:2.1, port: 8080 }\n  - { name: proxy, image: "quay.io/acme/proxy:v3@${D}" }\n`,
      CONTAINERS_TEMPLATE,
    );
    const r = await infer(dir);
    expect(r.knobs!.knobs.map((k) => k.path)).toEqual(['containers[0].image', 'containers[1].image']);
    expect(r.airgapValues).toEqual({
      containers: [
        { name: 'app', image: `${REG}/acme/web:2.1`, port: 8080 },
        { name: 'proxy', image: `${REG}/acme/proxy:v3@${D}` },
      ],
    });
    const knobOf = (ref: string) => r.findings.find((f) => f.reference === ref)!.origin.knob;
    expect(knobOf('docker.io/acme/web:2.1')).toBe('containers[0].image');
    expect((await after(dir, r)).sort()).toEqual([`${REG}/acme/proxy:v3@${D}`, `${REG}/acme/web:2.1`]);
  });

  it('`extraContainers[0].image.repository` (+ tag), nested under a mapping, scoped scheme', async () => {
    const dir = await chart(
      'list-split',
      'sidecars:\n  extraContainers:\n    - name: log\n      image: { repository: ghcr.io/org/log, tag: v1 }\n',
      pod(
        'p',
        '"{{ (index .Values.sidecars.extraContainers 0).image.repository }}:{{ (index .Values.sidecars.extraContainers 0).image.tag }}"',
      ),
    );
    const r = await infer(dir, 'scoped');
    expect(r.knobs!.knobs.map((k) => k.path)).toEqual(['sidecars.extraContainers[0].image.repository']);
    expect(r.airgapValues).toEqual({
      sidecars: { extraContainers: [{ name: 'log', image: { repository: `${REG}/ghcr.io/org/log`, tag: 'v1' } }] },
    });
    expect(await after(dir, r)).toEqual([`${REG}/ghcr.io/org/log:v1`]);
  });

  it("a list of plain image strings (`images: [a, b]`), and the user values' own list is the one written", async () => {
    const dir = await chart(
      'list-strings',
      'images: [docker.io/acme/a:1, docker.io/acme/b:2]\n',
      '{{- range $i, $img := .Values.images }}\n' + pod('p{{ $i }}', '{{ $img }}') + '{{- end }}\n',
    );
    const own = join(tmp.path, 'list-strings-own.yaml');
    await writeFile(own, 'images: [docker.io/acme/a:1, docker.io/acme/b:2, docker.io/acme/c:3]\n');
    const r = await scanTarget({
      target: dir,
      valuesFiles: [own],
      airgap: { host: REG, scheme: 'host-swap' },
      kubeVersion: 'v1.28.6',
    });
    expect(r.airgapValues).toEqual({ images: [`${REG}/acme/a:1`, `${REG}/acme/b:2`, `${REG}/acme/c:3`] });
    expect(r.knobs!.lists).toEqual({ images: ['docker.io/acme/a:1', 'docker.io/acme/b:2', 'docker.io/acme/c:3'] });
  });
});
