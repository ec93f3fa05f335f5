// The site end of the real stack: `sealift bundle -e airgap` (test/support/airgap-bundle.ts:
// every upstream server stopped after), `sealift load --extract-to DIR`, and `helmfile -e airgap
// template` in DIR with no network but the site registry; then `sealift verify --stack DIR` from
// the extracted dir alone (the environment and lock the bundle carries, no checkout). The site
// tools are left out here (--no-site-tools): site-kit.test.ts runs the site with them alone.
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { loadAll } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { normalizeImageReference } from '../../src/oci/reference.ts';
import { PROJECT_ROOT, requireTool, toolEnv } from '../../src/tools.ts';
import { makeAirgapBundle } from '../support/airgap-bundle.ts';
import { tempDir } from '../support/process.ts';
import { startContainerd } from '../support/containerd.ts';
import { startRegistry } from '../support/registry.ts';
import { runSealift } from '../support/cli.ts';

describe('load --extract-to on the real stack', () => {
  // scoped: the environment's registry.scheme; bundle records it, load pushes by it without
  // --scheme, and the extracted values name the same REG/<upstream-host>/... images
  it.each(['host-swap', 'scoped'] as const)(
    'gives a directory where helmfile -e airgap template works with every upstream stopped (registry.scheme %s)',
    async (scheme) => {
      await using work = await tempDir();
      await using site = await startRegistry();
      const { tar, overlay, lockFile, lock, run } = await makeAirgapBundle({
        workDir: work.path,
        siteHost: site.host,
        scheme,
        bundleArgs: ['--no-site-tools'],
      });

      const dir = join(work.path, 'site');
      const loadInto = (target: string, ...more: string[]) =>
        run(['load', tar, '--registry', site.host, '--plain-http', '--extract-to', target, ...more]);
      const load = await loadInto(dir, '--json');
      expect(load.exitCode, load.stdout.slice(-3000) + load.stderr.slice(-3000)).toBe(0);
      const result = JSON.parse(load.stdout) as {
        scheme: string;
        values: unknown;
        checks: { status: string; target: string }[];
      };
      expect(result.scheme).toBe(scheme);
      expect(result.values).toEqual({ registry: site.host, scheme, matches: true });
      expect(result.checks.length).toBe(lock.images.length);
      expect(result.checks.filter((c) => c.status !== 'ok')).toEqual([]);

      const helmfile = requireTool('helmfile');
      const tpl = await execa(helmfile, ['-f', 'helmfile.yaml.gotmpl', '-e', 'airgap', 'template', '--skip-deps'], {
        cwd: dir,
        reject: false,
        env: {
          ...process.env,
          ...toolEnv({
            HELM_CACHE_HOME: join(work.path, 'helm-cache'),
            HELM_CONFIG_HOME: join(work.path, 'helm-config'),
            HELM_DATA_HOME: join(work.path, 'helm-data'),
          }),
        },
        timeout: 240_000,
      });
      expect(tpl.exitCode, tpl.stderr.slice(-4000)).toBe(0);
      // the platform extras and the offline smoke test render with the rest (issue 13): RBAC roles,
      // NetworkPolicies, a cert-manager ClusterIssuer, dashboards, monitors (airgap's apiVersions),
      // and the InferenceService whose modelcar image is in the site registry
      type Doc = { kind?: string; metadata?: { name?: string; namespace?: string; labels?: Record<string, string> } };
      const docs = (loadAll(tpl.stdout, undefined, { json: true }) as (Doc | null)[]).filter((d): d is Doc => !!d);
      const namesOf = (kind: string, ns?: string) =>
        docs
          .filter((d) => d.kind === kind && (ns === undefined || d.metadata?.namespace === ns))
          .map((d) => d.metadata?.name);
      expect(namesOf('ClusterRole')).toEqual(
        expect.arrayContaining(['kserve-admin', 'kserve-model-developer', 'kserve-readonly']),
      );
      expect(namesOf('NetworkPolicy', 'kserve')).toEqual(
        expect.arrayContaining(['default-deny', 'allow-dns', 'allow-webhooks', 'allow-prometheus']),
      );
      expect(namesOf('ClusterIssuer')).toEqual(expect.arrayContaining(['site-ca']));
      expect(docs.filter((d) => d.kind === 'ConfigMap' && d.metadata?.labels?.grafana_dashboard === '1')).toHaveLength(
        5,
      );
      expect(namesOf('ServiceMonitor', 'knative-serving')).toEqual(['knative-serving']);
      const modelImage = `${site.host}/${scheme === 'scoped' ? 'sealift.invalid/' : ''}models/sklearn-iris:v1`;
      const isvc = docs.find((d) => d.kind === 'InferenceService' && d.metadata?.name === 'sklearn-iris') as
        { spec: { predictor: { model: { storageUri: string; modelFormat: { name: string } } } } } | undefined;
      expect(isvc?.spec.predictor.model).toMatchObject({
        storageUri: `oci://${modelImage}`,
        modelFormat: { name: 'sklearn' },
      });
      // what the cluster will pull: every container image of every rendered workload (strings inside
      // ConfigMaps, such as istiod's injection templates, are data, not pod specs)
      const pulled = new Set<string>();
      const walk = (v: unknown, inContainers: boolean): void => {
        if (Array.isArray(v)) v.forEach((x) => walk(x, inContainers));
        else if (v && typeof v === 'object') {
          for (const [k, x] of Object.entries(v)) {
            if (k === 'image' && inContainers && typeof x === 'string' && x !== 'auto') pulled.add(x);
            walk(x, k === 'containers' || k === 'initContainers');
          }
        }
      };
      for (const doc of loadAll(tpl.stdout, undefined, { json: true })) walk(doc, false);
      expect(pulled.size).toBeGreaterThan(5);
      const loaded = new Set(result.checks.map((c) => c.target));
      for (const ref of pulled) {
        expect(ref.startsWith(`${site.host}/`), ref).toBe(true);
        // scoped: the upstream host is the first path component (docker.io, quay.io, gcr.io, ...)
        if (scheme === 'scoped') expect(ref.slice(site.host.length + 1).split('/')[0], ref).toMatch(/\./);
        expect(
          loaded.has(ref) ||
            [...loaded].some((t) => t.split('@')[0] === ref.split('@')[0] || t.endsWith(`@${ref.split('@')[1]}`)),
          `${ref} was not loaded`,
        ).toBe(true);
      }
      // and verify agrees (by the environment's scheme): every image of the extracted render is in
      // the site registry with the lock's digest
      const rendered = join(work.path, 'rendered.yaml');
      await writeFile(rendered, tpl.stdout);
      type Verified = {
        ok: boolean;
        registry: string;
        scheme: string;
        lock: string;
        offenders: { reference: string; problem: string; message: string }[];
        registryChecks: { reference: string; status: string }[];
      };
      const verify = await run([
        'verify',
        '-e',
        'airgap',
        '--overlay',
        overlay,
        '--lock',
        lockFile,
        '--manifests',
        rendered,
        '--registry',
        '--json',
      ]);
      expect(verify.exitCode, verify.stdout.slice(-3000) + verify.stderr.slice(-3000)).toBe(0);
      const v = JSON.parse(verify.stdout) as Verified;
      expect(v.scheme).toBe(scheme);
      expect(v.offenders).toEqual([]);
      expect(v.registryChecks.length).toBeGreaterThan(20);
      expect(v.registryChecks.filter((c) => c.status !== 'present')).toEqual([]);

      // the site alone: no overlay, no --lock, no checkout; the environment and the lock the
      // bundle carries, read from the extracted dir, with every upstream server still stopped
      const carried = await readFile(join(dir, 'environments', 'airgap.yaml'), 'utf8');
      expect(carried).toContain(site.host);
      const atSite = (args: string[]) =>
        runSealift(args, { cwd: work.path, env: { SEALIFT_CACHE_DIR: join(work.path, 'site-cache') } });
      const siteArgs = ['verify', '-e', 'airgap', '--stack', dir, '--manifests', rendered, '--registry', '--json'];
      const alone = await atSite(siteArgs);
      expect(alone.exitCode, alone.stdout.slice(-3000) + alone.stderr.slice(-3000)).toBe(0);
      const a = JSON.parse(alone.stdout) as Verified;
      expect(a.ok).toBe(true);
      expect(a.registry).toBe(site.host);
      expect(a.scheme).toBe(scheme);
      expect(a.lock).toBe(join(dir, 'imagelists', 'airgap.lock.json'));
      expect(a.offenders).toEqual([]);
      expect(a.registryChecks.map((c) => c.reference).sort()).toEqual(v.registryChecks.map((c) => c.reference).sort());
      expect(a.registryChecks.filter((c) => c.status !== 'present')).toEqual([]);

      // the model image sealift built: verify found it in the site registry, and a node pulls it by that name
      const modelCheck = a.registryChecks.find((c) => c.reference === modelImage);
      expect(modelCheck?.status).toBe('present');
      {
        await using containerd = await startContainerd();
        await containerd.ctr(['images', 'pull', '--snapshotter', 'native', '--plain-http', modelImage]);
        expect(await containerd.ctr(['images', 'ls'])).toContain(modelImage);
      }

      // an image gone from the site registry: verify from the site dir fails and names it
      const victim = a.registryChecks.find((c) => !c.reference.includes('@') && c.reference !== modelImage)!.reference;
      const gone = normalizeImageReference(victim);
      const del = await execa(
        requireTool('skopeo'),
        ['delete', '--tls-verify=false', `docker://${site.host}/${gone.repository}:${gone.tag ?? 'latest'}`],
        { reject: false },
      );
      expect(del.exitCode, del.stderr).toBe(0);
      const missing = await atSite(siteArgs);
      expect(missing.exitCode).toBe(8);
      const m = JSON.parse(missing.stdout) as Verified;
      expect(m.ok).toBe(false);
      // (seeded images are distinct, so only images sharing its manifest could go with it)
      const named = m.offenders.find((o) => o.reference === victim);
      expect(named?.problem).toBe('missing');
      expect(named?.message).toContain(`${site.host}/${gone.repository}`);
      expect(m.offenders.every((o) => o.problem === 'missing')).toBe(true);
      expect(missing.stdout + missing.stderr).toContain(victim);

      // the carried default.yaml is empty on purpose: load will not write it over a stack's own
      const checkout = join(work.path, 'checkout');
      await cp(join(PROJECT_ROOT, 'environments'), join(checkout, 'environments'), { recursive: true });
      const over = await loadInto(checkout);
      expect(over.exitCode).toBe(2);
      expect(over.stderr).toContain(join(checkout, 'environments', 'default.yaml'));
      expect(await readFile(join(checkout, 'environments', 'default.yaml'), 'utf8')).toBe(
        await readFile(join(PROJECT_ROOT, 'environments', 'default.yaml'), 'utf8'),
      );
      // a directory an earlier load wrote takes the same files again
      const again = await loadInto(dir);
      expect(again.exitCode, again.stderr.slice(-3000)).toBe(0);
    },
  );
});
