// The preflight verdicts, pure: the environment's Kubernetes version against every chart's own
// kubeVersion constraint and every component rule, and the components against each other.
import type { SemVer } from 'semver';
import type { CompatData } from './compat.ts';
import { formatVersion, parseChartConstraint } from './range.ts';

/** One component of the environment at one version (several releases can make it: Istio's three charts). */
export interface ComponentInstance {
  component: string;
  title: string;
  version: SemVer;
  releases: string[];
}

/** A chart release and its Chart.yaml kubeVersion constraint, if it has one. */
export interface ChartConstraint {
  release: string;
  chart: string;
  version: string;
  kubeVersion?: string;
  /** where the constraint was read (the chart archive) */
  from: string;
}

export type CheckLevel = 'hard' | 'warn' | 'ok' | 'unknown';

export interface CheckFinding {
  /** hard: will not work (non-zero exit); warn: outside the documented range; unknown: no data to judge */
  level: CheckLevel;
  check: 'chart' | 'kubernetes' | 'component' | 'api';
  /** component title (KServe) or chart name */
  component: string;
  version: string;
  releases: string[];
  /** what is required, e.g. "Kubernetes >=1.30.0-0" */
  requirement: string;
  /** what the environment has, e.g. "Kubernetes v1.28.6" */
  actual: string;
  why?: string;
  source?: string;
  message: string;
}

export function evaluateCharts(kube: SemVer, charts: readonly ChartConstraint[]): CheckFinding[] {
  return charts
    .filter((c) => c.kubeVersion)
    .map((c) => {
      const range = parseChartConstraint(c.kubeVersion!, `${c.from}: Chart.yaml kubeVersion`);
      const ok = range.test(kube);
      return {
        level: ok ? 'ok' : 'hard',
        check: 'chart',
        component: c.chart,
        version: c.version,
        releases: [c.release],
        requirement: `Kubernetes ${c.kubeVersion}`,
        actual: `Kubernetes ${formatVersion(kube)}`,
        why: "the chart's Chart.yaml kubeVersion: helm refuses to install it on other versions",
        source: c.from,
        message: ok
          ? `chart ${c.chart} ${c.version} accepts Kubernetes ${formatVersion(kube)} (kubeVersion ${c.kubeVersion})`
          : `chart ${c.chart} ${c.version} (release ${c.release}) requires Kubernetes ${c.kubeVersion}; the environment has ${formatVersion(kube)}: helm will not install it`,
      } satisfies CheckFinding;
    });
}

export function evaluateComponents(
  kube: SemVer,
  instances: readonly ComponentInstance[],
  data: CompatData,
): CheckFinding[] {
  const findings: CheckFinding[] = [];
  for (const inst of instances) {
    const rules = data.rules.filter((r) => r.component === inst.component && r.versions.test(inst.version));
    const base = { component: inst.title, version: formatVersion(inst.version), releases: inst.releases };
    const name = `${inst.title} ${formatVersion(inst.version)}`;
    if (!rules.some((r) => r.kubernetes)) {
      findings.push({
        ...base,
        level: 'unknown',
        check: 'kubernetes',
        requirement: 'Kubernetes (no data)',
        actual: `Kubernetes ${formatVersion(kube)}`,
        message: `no compatibility data for ${name}: check its Kubernetes range by hand, and add it to compat/`,
      });
    }
    for (const r of rules) {
      const src = { why: r.why, source: r.source };
      if (r.kubernetes) {
        const ok = r.kubernetes.test(kube);
        findings.push({
          ...base,
          ...src,
          level: ok ? 'ok' : r.level,
          check: 'kubernetes',
          requirement: `Kubernetes ${r.kubernetes.text}`,
          actual: `Kubernetes ${formatVersion(kube)}`,
          message: ok
            ? `${name} works with Kubernetes ${formatVersion(kube)} (${r.kubernetes.text})`
            : `${name} ${r.level === 'hard' ? 'needs' : 'documents'} Kubernetes ${r.kubernetes.text}; the environment has ${formatVersion(kube)}: ${r.why} (source: ${r.source})`,
        });
        continue;
      }
      const req = r.requires!;
      const title = data.components[req.component]?.title ?? req.component;
      const others = instances.filter((i) => i.component === req.component);
      if (others.length === 0) {
        findings.push({
          ...base,
          ...src,
          level: 'unknown',
          check: 'component',
          requirement: `${title} ${req.versions.text}`,
          actual: `${title}: not in this environment`,
          message: `${name} wants ${title} ${req.versions.text}, which this environment does not install: check the cluster's own (${r.source})`,
        });
        continue;
      }
      for (const o of others) {
        const ok = req.versions.test(o.version);
        findings.push({
          ...base,
          ...src,
          level: ok ? 'ok' : r.level,
          check: 'component',
          requirement: `${title} ${req.versions.text}`,
          actual: `${title} ${formatVersion(o.version)}`,
          message: ok
            ? `${name} with ${title} ${formatVersion(o.version)} (${req.versions.text})`
            : `${name} ${r.level === 'hard' ? 'needs' : 'documents'} ${title} ${req.versions.text}; the environment has ${formatVersion(o.version)} (releases ${o.releases.join(', ')}): ${r.why} (source: ${r.source})`,
        });
      }
    }
  }
  return findings;
}

/** What a release renders, for the API check. */
export interface RenderedDocuments {
  release: string;
  documents: readonly { value: unknown }[];
}

const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
const obj = (v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

/** `group/version kind` keys the environment's own CRDs (served versions) and APIServices define. */
function definedApis(releases: readonly RenderedDocuments[]): { kinds: Set<string>; groupVersions: Set<string> } {
  const kinds = new Set<string>();
  const groupVersions = new Set<string>();
  for (const r of releases) {
    for (const d of r.documents) {
      const doc = obj(d.value);
      const spec = obj(doc.spec);
      if (doc.kind === 'CustomResourceDefinition') {
        const kind = str(obj(spec.names).kind);
        const versions = Array.isArray(spec.versions) ? spec.versions.map(obj) : [];
        for (const v of versions)
          if (v.served !== false && kind) kinds.add(`${String(spec.group)}/${String(v.name)} ${kind}`);
      } else if (doc.kind === 'APIService') {
        groupVersions.add(`${String(spec.group)}/${String(spec.version)}`);
      }
    }
  }
  return { kinds, groupVersions };
}

/**
 * Every rendered kind at its apiVersion: a built-in one the Kubernetes version does not serve is
 * hard (the API server rejects it); a kind of another group that no release's CRD defines warns
 * (the cluster must already have it).
 */
export function evaluateApis(kube: SemVer, releases: readonly RenderedDocuments[], data: CompatData): CheckFinding[] {
  const builtin = new Set(data.builtinGroups);
  const defined = definedApis(releases);
  const used = new Map<string, { apiVersion: string; kind: string; releases: Set<string> }>();
  for (const r of releases) {
    for (const d of r.documents) {
      const doc = obj(d.value);
      const apiVersion = str(doc.apiVersion);
      const kind = str(doc.kind);
      if (!apiVersion || !kind) continue;
      const key = `${apiVersion} ${kind}`;
      const u = used.get(key) ?? { apiVersion, kind, releases: new Set<string>() };
      u.releases.add(r.release);
      used.set(key, u);
    }
  }
  const findings: CheckFinding[] = [];
  const base = (u: { apiVersion: string; kind: string; releases: Set<string> }) => ({
    check: 'api' as const,
    component: `${u.kind} ${u.apiVersion}`,
    version: '',
    releases: [...u.releases],
    actual: `Kubernetes ${formatVersion(kube)}`,
  });
  for (const u of used.values()) {
    const group = u.apiVersion.includes('/') ? u.apiVersion.slice(0, u.apiVersion.indexOf('/')) : '';
    const by = [...u.releases].join(', ');
    if (builtin.has(group)) {
      const api = data.apis.find((a) => a.apiVersion === u.apiVersion && a.kinds.includes(u.kind));
      if (!api || api.kubernetes.test(kube)) continue;
      findings.push({
        ...base(u),
        level: 'hard',
        requirement: `Kubernetes ${api.kubernetes.text}`,
        source: api.source,
        message: `${by} renders ${u.kind} ${u.apiVersion}, which Kubernetes ${formatVersion(kube)} does not serve (served: ${api.kubernetes.text}; source: ${api.source})`,
      });
    } else if (!defined.kinds.has(`${u.apiVersion} ${u.kind}`) && !defined.groupVersions.has(u.apiVersion)) {
      findings.push({
        ...base(u),
        level: 'warn',
        requirement: `a CRD for ${u.kind} ${u.apiVersion}`,
        actual: 'no release of the environment defines it',
        message: `${by} renders ${u.kind} ${u.apiVersion}, which no release of the environment defines (no CustomResourceDefinition serves it): the cluster must already have it`,
      });
    }
  }
  const kinds = used.size;
  if (findings.length === 0)
    findings.push({
      check: 'api',
      component: 'Kubernetes APIs',
      version: '',
      releases: releases.map((r) => r.release),
      level: 'ok',
      requirement: 'every rendered kind served',
      actual: `${kinds} kinds at their apiVersions`,
      message: `all ${kinds} kinds the environment renders are served by Kubernetes ${formatVersion(kube)} or defined by its own CRDs`,
    });
  return findings;
}
