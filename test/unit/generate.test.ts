import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { execa } from 'execa';
import { parse } from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isSealiftError } from '../../src/errors.ts';
import { generate } from '../../src/generate/index.ts';
import { helmfileReason } from '../../src/generate/helmfile.ts';
import { PROJECT_ROOT } from '../../src/tools.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sealift-gen-'));
});
afterEach(async () => rm(dir, { recursive: true, force: true }));

async function snapshot(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out[relative(root, p)] = await readFile(p, 'utf8');
    }
  };
  await walk(root);
  return out;
}

describe('generate', () => {
  it('is deterministic: two runs give identical bytes', async () => {
    await generate({ stackDir: PROJECT_ROOT, env: 'all', outDir: join(dir, 'a') });
    await generate({ stackDir: PROJECT_ROOT, env: 'all', outDir: join(dir, 'b') });
    const a = await snapshot(join(dir, 'a'));
    expect(Object.keys(a)).toContain('helmfile.yaml.gotmpl');
    expect(Object.keys(a)).toContain('values/airgap/kserve.yaml');
    expect(Object.keys(a)).toContain('releases/knative-serving/templates/manifests.yaml');
    expect(await snapshot(join(dir, 'b'))).toEqual(a);
    const again = await generate({ stackDir: PROJECT_ROOT, env: 'all', outDir: join(dir, 'a') });
    expect(again.files.every((f) => f.action === 'unchanged')).toBe(true);
  });

  it('writes helmfile v1: environments part, ---, releases with namespace/name needs and labels', async () => {
    await generate({ stackDir: PROJECT_ROOT, env: 'airgap', outDir: dir });
    const text = await readFile(join(dir, 'helmfile.yaml.gotmpl'), 'utf8');
    const [head, body] = text.split(/^---$/m);
    expect(parse(head!)).toEqual({
      environments: {
        airgap: {
          values: [
            {
              sealift: {
                kubeVersion: 'v1.28.6',
                registry: '10.61.3.31:35000',
                chartsFrom: 'site',
                apiVersions: ['monitoring.coreos.com/v1'],
              },
            },
          ],
        },
      },
    });
    // a single environment needs no Go conditions: the releases part is plain YAML after one action
    const releases = parse(
      body!
        .replace('{{ .Values.sealift.kubeVersion }}', 'v1.28.6')
        .replace('{{ .Values.sealift.apiVersions | toJson }}', '["monitoring.coreos.com/v1"]')
        .replaceAll('{{ .Environment.Name }}', 'airgap'),
    ) as {
      apiVersions: string[];
      releases: { name: string; namespace: string; needs?: string[]; labels: Record<string, string>; chart: string }[];
    };
    expect(releases.apiVersions).toEqual(['monitoring.coreos.com/v1']);
    const kserve = releases.releases.find((r) => r.name === 'kserve')!;
    expect(kserve.needs).toEqual([
      'cert-manager/cert-manager',
      'kserve/kserve-crd',
      'istio-system/istio-ingressgateway',
      'default/knative-serving',
      'default/net-istio',
    ]);
    expect(kserve.labels).toEqual({ app: 'kserve', tier: 'inference' });
    expect(kserve.chart).toBe('./charts/.unpacked/kserve-v0.15.2/kserve');
    expect(releases.releases.find((r) => r.name === 'net-istio')!.chart).toBe('./releases/net-istio');
    expect(text).not.toContain('dependsOn');
  });

  it('every hook script is valid sh; the first-install retry runs only for kserve and only on presync', async () => {
    for (const env of ['online', 'airgap']) {
      await generate({ stackDir: PROJECT_ROOT, env, outDir: join(dir, env) });
      const text = await readFile(join(dir, env, 'helmfile.yaml.gotmpl'), 'utf8');
      const body = text
        .split(/^---$/m)[1]!
        .replace('{{ .Values.sealift.kubeVersion }}', 'v1.28.6')
        .replaceAll('{{ .Environment.Name }}', env);
      const { releases } = parse(body) as {
        releases: { name: string; hooks?: { events: string[]; command: string; args: string[] }[] }[];
      };
      const hooks = releases.flatMap((r) => (r.hooks ?? []).map((h) => ({ release: r.name, ...h })));
      expect(hooks.length).toBeGreaterThan(0);
      for (const h of hooks) {
        expect(h.command).toBe('sh');
        const check = await execa('sh', ['-n', '-c', h.args[1]!], { reject: false });
        expect(check.exitCode, `${h.release}: ${check.stderr}`).toBe(0);
      }
      const presync = hooks.filter((h) => h.events.includes('presync'));
      expect(presync.map((h) => h.release)).toEqual(['kserve']);
      expect(presync[0]!.args[1]).toContain(`--values values/${env}/kserve.yaml`);
    }
  });

  it('keeps values out of Go templating and carries release-file wrapper charts', async () => {
    await generate({ stackDir: PROJECT_ROOT, env: 'online', outDir: dir });
    expect(parse(await readFile(join(dir, 'values/online/cert-manager.yaml'), 'utf8'))).toEqual({
      crds: { enabled: true },
    });
    const chart = parse(await readFile(join(dir, 'releases/knative-serving/Chart.yaml'), 'utf8'));
    expect(chart).toMatchObject({ apiVersion: 'v2', name: 'knative-serving', version: '1.15.2' });
    expect(await readFile(join(dir, 'releases/knative-serving/templates/manifests.yaml'), 'utf8')).toContain(
      '$.Files.Get $file',
    );
  });

  it('is atomic: a failing run leaves the previous output as it was, a new one is never created', async () => {
    const stack = join(dir, 'stack');
    await cp(join(PROJECT_ROOT, 'environments'), join(stack, 'environments'), { recursive: true });
    await cp(join(PROJECT_ROOT, 'templates'), join(stack, 'templates'), { recursive: true });
    const out = join(dir, 'out');
    await generate({ stackDir: stack, env: 'online', outDir: out });
    const before = await snapshot(out);

    await writeFile(join(stack, 'environments', 'online.yaml'), 'releases:\n  kserve:\n    needs: [nothing]\n');
    const e = await generate({ stackDir: stack, env: 'online', outDir: out }).catch((x: unknown) => x);
    expect(isSealiftError(e) && e.code).toBe('CONFIG_INVALID');
    expect(await snapshot(out)).toEqual(before);

    // a template error (strict Handlebars: a missing variable) happens after loading: same promise
    await cp(join(PROJECT_ROOT, 'environments', 'online.yaml'), join(stack, 'environments', 'online.yaml'));
    await writeFile(join(stack, 'templates', 'values.yaml.hbs'), '# {{release}} {{nosuchthing}}\n');
    const t = await generate({ stackDir: stack, env: 'online', outDir: out }).catch((x: unknown) => x);
    expect(isSealiftError(t) && t.code).toBe('TEMPLATE_FAILED');
    expect(isSealiftError(t) && t.message).toContain('nosuchthing');
    expect(await snapshot(out)).toEqual(before);

    const fresh = join(dir, 'never');
    await generate({ stackDir: stack, env: 'online', outDir: fresh }).catch(() => undefined);
    await expect(readdir(fresh)).rejects.toThrow();
    expect((await readdir(dir)).filter((n) => n.includes('.tmp'))).toEqual([]);
  });
});

describe('helmfileReason', () => {
  it('picks the line a person can act on out of helmfile stderr', () => {
    const hook =
      'hook[prepare] logs | \nin ./helmfile.yaml.gotmpl: [hook[sh]: command `sh` failed\n\nSTDERR:\n  sealift: chart charts/x-1.0.0.tgz is missing: extract the bundle\n';
    expect(helmfileReason(hook)).toBe('chart charts/x-1.0.0.tgz is missing: extract the bundle');
    const helm =
      'Templating release=a\nin ./helmfile.yaml.gotmpl: command "helm" exited with non-zero status:\n\nSTDERR:\n  Error: execution error at (a/templates/m.yaml:4:4): release file a.yaml is missing\n';
    expect(helmfileReason(helm)).toBe('execution error at (a/templates/m.yaml:4:4): release file a.yaml is missing');
    expect(helmfileReason('in ./helmfile.yaml.gotmpl: failed to read helmfile.yaml.gotmpl: yaml: line 3\n')).toBe(
      'in ./helmfile.yaml.gotmpl: failed to read helmfile.yaml.gotmpl: yaml: line 3',
    );
    expect(helmfileReason('')).toBe('no output');
  });
});
