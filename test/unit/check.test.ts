// sealift check, pure parts: version and range parsing (compat data and Helm's Chart.yaml
// grammar), the two levels, and the shipped compat data against the shipped environments.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadCompat, type CompatData } from '../../src/check/compat.ts';
import { evaluateApis, evaluateCharts, evaluateComponents, type ComponentInstance } from '../../src/check/evaluate.ts';
import { componentInstances } from '../../src/check/index.ts';
import { parseChartConstraint, parseRange, parseVersion } from '../../src/check/range.ts';
import { loadEnvironment } from '../../src/config/index.ts';
import { isSealiftError } from '../../src/errors.ts';
import { PROJECT_ROOT } from '../../src/tools.ts';

const v = (s: string) => parseVersion(s, 'test');

describe('parseVersion', () => {
  it.each([
    ['v1.28.6', '1.28.6'],
    ['1.28.6', '1.28.6'],
    ['v1.28', '1.28.0'],
    ['v0.15.2', '0.15.2'],
    ['v1.30.4-gke.100', '1.30.4-gke.100'],
    ['v1.29.1+k3s1', '1.29.1'],
  ])('%s -> %s', (text, version) => expect(v(text).version).toBe(version));

  it.each(['', 'latest', 'v1', '1.x'])('rejects "%s" naming where it came from', (text) => {
    expect(() => parseVersion(text, 'environments/x.yaml: kubeVersion')).toThrow(
      `environments/x.yaml: kubeVersion: "${text}" is not a version`,
    );
  });
});

describe('compat ranges (node-semver)', () => {
  it.each([
    ['>=1.30.0-0', 'v1.28.6', false],
    ['>=1.30.0-0', 'v1.30.0', true],
    ['>=1.30.0-0', 'v1.30.4-gke.100', true],
    ['>=1.27.0-0 <1.31.0-0', 'v1.30.9', true],
    ['>=1.27.0-0 <1.31.0-0', 'v1.31.0', false],
    ['>=1.27.0-0 <1.31.0-0', 'v1.26.15', false],
    ['>=1.15.0 <1.16.0', 'v1.15.2', true],
    ['1.2 - 1.4', 'v1.4.9', true],
    ['^1.2 || ^2.0', 'v2.3.0', true],
  ])('%s contains %s: %s', (range, version, ok) => {
    expect(parseRange(range, 'test').test(v(version))).toBe(ok);
  });

  it('rejects a range that is not one, with a coded error', () => {
    let caught: unknown;
    try {
      parseRange('>=one', 'compat/x.yaml:3: kubernetes');
    } catch (e) {
      caught = e;
    }
    expect(isSealiftError(caught)).toBe(true);
    expect((caught as Error).message).toContain('compat/x.yaml:3: kubernetes: ">=one" is not a version range');
  });
});

describe("Chart.yaml kubeVersion (Helm's Masterminds grammar)", () => {
  it.each([
    // cert-manager v1.16.1's own constraint
    ['>= 1.22.0-0', 'v1.28.6', true],
    ['>= 1.22.0-0', 'v1.21.14', false],
    // `,` is AND in Helm, not an alternative
    ['>=1.20.0-0, <1.29.0-0', 'v1.28.6', true],
    ['>=1.20.0-0, <1.29.0-0', 'v1.29.0', false],
    ['>=1.20.0-0 <1.29.0-0', 'v1.29.0', false],
    ['<1.20.0-0 || >=1.25.0-0', 'v1.28.6', true],
    ['<1.20.0-0 || >=1.29.0-0', 'v1.28.6', false],
    ['>=1.19.0-0, != 1.28.6', 'v1.28.6', false],
    ['>=1.19.0-0, != 1.28.6', 'v1.28.7', true],
    ['~1.28.0-0', 'v1.28.6', true],
    ['1.26 - 1.28', 'v1.28.6', true],
  ])('%s admits %s: %s', (constraint, version, ok) => {
    expect(parseChartConstraint(constraint, 'test').test(v(version))).toBe(ok);
  });

  it.each(['', '>=1.20 ||', '>= banana'])('rejects "%s"', (text) => {
    expect(() => parseChartConstraint(text, 'charts/x.tgz Chart.yaml kubeVersion')).toThrow(
      /charts\/x\.tgz Chart\.yaml kubeVersion: .* is not a version range/,
    );
  });
});

describe('levels', () => {
  const data: CompatData = {
    components: {
      comp: { title: 'Comp', match: { charts: ['comp'], files: [] } },
      dep: { title: 'Dep', match: { charts: ['dep'], files: [] } },
    },
    rules: [
      {
        component: 'comp',
        versions: parseRange('>=2.0.0 <3.0.0', 't'),
        kubernetes: parseRange('>=1.28.0-0', 't'),
        level: 'hard',
        why: 'exits at start below 1.28',
        source: 'https://example.invalid/min',
        where: 't:1',
      },
      {
        component: 'comp',
        versions: parseRange('>=2.0.0 <3.0.0', 't'),
        kubernetes: parseRange('>=1.30.0-0', 't'),
        level: 'warn',
        why: 'documents 1.30',
        source: 'https://example.invalid/docs',
        where: 't:2',
      },
      {
        component: 'comp',
        versions: parseRange('>=2.0.0 <3.0.0', 't'),
        requires: { component: 'dep', versions: parseRange('>=1.5.0', 't') },
        level: 'warn',
        why: 'documents dep 1.5',
        source: 'https://example.invalid/dep',
        where: 't:3',
      },
    ],
    builtinGroups: [],
    apis: [],
  };
  const comp = (version: string): ComponentInstance => ({
    component: 'comp',
    title: 'Comp',
    version: v(version),
    releases: ['comp'],
  });
  const dep = (version: string): ComponentInstance => ({
    component: 'dep',
    title: 'Dep',
    version: v(version),
    releases: ['dep'],
  });
  // Dep has no rules of its own: only Comp's findings are under test
  const ofComp = (kube: string, instances: ComponentInstance[]) =>
    evaluateComponents(v(kube), instances, data).filter((f) => f.component === 'Comp');
  const levels = (kube: string, instances: ComponentInstance[]) =>
    ofComp(kube, instances).map((f) => [f.check, f.level]);

  it('inside every range: all ok', () => {
    expect(levels('v1.30.1', [comp('2.1.0'), dep('1.6.0')])).toEqual([
      ['kubernetes', 'ok'],
      ['kubernetes', 'ok'],
      ['component', 'ok'],
    ]);
  });

  it('below the documented range but above the minimum: a warning naming the component, range and source', () => {
    const f = ofComp('v1.28.6', [comp('2.1.0'), dep('1.6.0')]);
    expect(f.map((x) => x.level)).toEqual(['ok', 'warn', 'ok']);
    expect(f[1]!.message).toBe(
      'Comp v2.1.0 documents Kubernetes >=1.30.0-0; the environment has v1.28.6: documents 1.30 (source: https://example.invalid/docs)',
    );
  });

  it('below the minimum: hard', () => {
    const f = ofComp('v1.25.0', [comp('2.1.0'), dep('1.6.0')]);
    expect(f.map((x) => x.level)).toEqual(['hard', 'warn', 'ok']);
    expect(f[0]!.message).toMatch(/^Comp v2\.1\.0 needs Kubernetes >=1\.28\.0-0; the environment has v1\.25\.0/);
  });

  it('a component against another: the version of the other outside the range warns', () => {
    const f = ofComp('v1.30.0', [comp('2.1.0'), dep('1.4.0')]);
    expect(f[2]).toMatchObject({ level: 'warn', requirement: 'Dep >=1.5.0', actual: 'Dep v1.4.0' });
  });

  it('no data for a version, or the other component not installed: unknown, not ok', () => {
    expect(levels('v1.30.0', [comp('3.0.0')])).toEqual([['kubernetes', 'unknown']]);
    expect(levels('v1.30.0', [comp('2.0.0')]).at(-1)).toEqual(['component', 'unknown']);
  });

  it("a chart's own kubeVersion that excludes the cluster is hard; a chart without one is not judged", () => {
    const charts = [
      { release: 'cm', chart: 'cert-manager', version: 'v1.16.1', kubeVersion: '>= 1.22.0-0', from: 'cm.tgz' },
      { release: 'b', chart: 'base', version: '1.23.2', from: 'b.tgz' },
    ];
    expect(evaluateCharts(v('v1.28.6'), charts).map((f) => f.level)).toEqual(['ok']);
    const [f] = evaluateCharts(v('v1.21.0'), charts);
    expect(f).toMatchObject({ level: 'hard', check: 'chart', component: 'cert-manager', source: 'cm.tgz' });
    expect(f!.message).toContain('requires Kubernetes >= 1.22.0-0; the environment has v1.21.0');
  });
});

describe('APIs', () => {
  const docs = (...values: unknown[]) => values.map((value) => ({ value }));
  const pdb = (apiVersion: string) => ({ apiVersion, kind: 'PodDisruptionBudget', metadata: { name: 'x' } });
  const crd = {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    spec: {
      group: 'example.com',
      names: { kind: 'Widget' },
      versions: [
        { name: 'v1', served: true },
        { name: 'v1alpha1', served: false },
      ],
    },
  };
  const widget = (v: string) => ({ apiVersion: `example.com/${v}`, kind: 'Widget' });

  it('a built-in kind at an apiVersion the Kubernetes version no longer serves is hard, with its source', async () => {
    const data = await loadCompat();
    const releases = [{ release: 'old', documents: docs(pdb('policy/v1beta1'), pdb('policy/v1')) }];
    expect(evaluateApis(v('v1.24.9'), releases, data).map((f) => f.level)).toEqual(['ok']);
    const [f, ...rest] = evaluateApis(v('v1.28.6'), releases, data);
    expect(rest).toEqual([]);
    expect(f).toMatchObject({
      level: 'hard',
      check: 'api',
      component: 'PodDisruptionBudget policy/v1beta1',
      requirement: 'Kubernetes <1.25.0-0',
      source: 'https://kubernetes.io/docs/reference/using-api/deprecation-guide/#v1-25',
    });
    // and one that is not served yet
    expect(evaluateApis(v('v1.20.0'), releases, data).map((f) => f.component)).toEqual([
      'PodDisruptionBudget policy/v1',
    ]);
  });

  it('a custom kind needs a CRD of the environment serving that version, else it warns', async () => {
    const data = await loadCompat();
    const k = v('v1.28.6');
    expect(evaluateApis(k, [{ release: 'a', documents: docs(crd, widget('v1')) }], data)[0]!.level).toBe('ok');
    const missing = evaluateApis(k, [{ release: 'a', documents: docs(widget('v1')) }], data);
    expect(missing).toEqual([
      expect.objectContaining({ level: 'warn', component: 'Widget example.com/v1', releases: ['a'] }),
    ]);
    const unserved = evaluateApis(k, [{ release: 'a', documents: docs(crd, widget('v1alpha1')) }], data);
    expect(unserved.map((f) => [f.level, f.component])).toEqual([['warn', 'Widget example.com/v1alpha1']]);
  });
});

describe('the shipped compat data and environments', () => {
  it('airgap (Kubernetes v1.28.6): KServe 0.15 warns with its source, nothing is hard', async () => {
    const data = await loadCompat();
    const env = await loadEnvironment(PROJECT_ROOT, 'airgap');
    const instances = componentInstances(env, data);
    expect(instances.map((i) => `${i.component} ${i.version.version} ${i.releases.join(',')}`).sort()).toEqual([
      'cert-manager 1.16.1 cert-manager',
      'istio 1.23.2 istio-base,istiod,istio-ingressgateway',
      'knative-serving 1.15.2 knative-serving-crds,knative-serving',
      'kserve 0.15.2 kserve-crd,kserve',
      'net-istio 1.15.1 net-istio',
    ]);
    const f = evaluateComponents(v(env.kubeVersion), instances, data);
    expect(f.filter((x) => x.level === 'hard')).toEqual([]);
    expect(f.filter((x) => x.level === 'warn')).toEqual([
      expect.objectContaining({
        component: 'KServe',
        requirement: 'Kubernetes >=1.30.0-0',
        source: expect.stringMatching(/^https:\/\/kserve\.github\.io\//),
      }),
    ]);
  });

  it('on Kubernetes v1.25.0 Knative Serving is hard', async () => {
    const data = await loadCompat();
    const env = await loadEnvironment(PROJECT_ROOT, 'airgap');
    const hard = evaluateComponents(v('v1.25.0'), componentInstances(env, data), data).filter(
      (x) => x.level === 'hard',
    );
    expect(hard.map((x) => x.component)).toEqual(['Knative Serving', 'Knative net-istio']);
  });
});

describe('loadCompat', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sealift-compat-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('names the file and line of a bad range', async () => {
    await writeFile(
      join(dir, 'x.yaml'),
      [
        'components:',
        '  a: { title: A, match: { charts: [a] } }',
        'rules:',
        '  - component: a',
        "    versions: '>=1'",
        "    kubernetes: '>=not'",
        '    level: warn',
        '    why: w',
        '    source: s',
        '',
      ].join('\n'),
    );
    await expect(loadCompat([dir])).rejects.toThrow(/x\.yaml:4: kubernetes: ">=not" is not a version range/);
  });

  it('names an unknown key and a rule for an undefined component', async () => {
    await writeFile(join(dir, 'x.yaml'), 'components:\n  a: { title: A, match: { charts: [a] }, colour: red }\n');
    await expect(loadCompat([dir])).rejects.toThrow(/x\.yaml:2: components\.a\.colour: unknown key "colour"/);
    await writeFile(
      join(dir, 'x.yaml'),
      "rules:\n  - { component: b, versions: '*', kubernetes: '*', level: hard, why: w, source: s }\n",
    );
    await expect(loadCompat([dir])).rejects.toThrow(/x\.yaml:2: the rule names component "b", which no file defines/);
  });
});
