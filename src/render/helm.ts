// The helm wrapper: `helm template` and `helm pull`, nothing else. Helm runs through runTool
// (src/exec.ts): a failed call is a ToolError carrying the argv (secrets stripped), the exit code
// and the tail of helm's stderr, with a one-line message a person can act on.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SealiftError, type ErrorCode } from '../errors.ts';
import { noEvents, type EventSink } from '../events.ts';
import { runTool, type ToolResult } from '../exec.ts';

export type HelmResult = ToolResult;

export interface HelmCallOptions {
  signal?: AbortSignal;
  /** extra environment for helm (e.g. HELM_CACHE_HOME) */
  env?: Record<string, string>;
}

/** `helm <args>`; a failure is a ToolError whose message is helm's own `Error: ...` line. */
export function runHelm(
  args: string[],
  opts: HelmCallOptions & { code?: ErrorCode; what?: string } = {},
): Promise<HelmResult> {
  return runTool('helm', args, opts);
}

export interface HelmTemplateOptions extends HelmCallOptions {
  release: string;
  namespace?: string;
  /** a chart directory, a .tgz, `repo/chart` with `repo`, or `oci://host/path/chart` */
  chart: string;
  version?: string;
  /** chart repository URL (helm --repo) */
  repo?: string;
  plainHttp?: boolean;
  /** values objects, each written to a temp file and passed as -f in order (after valuesFiles) */
  values?: Record<string, unknown>[];
  valuesFiles?: string[];
  set?: string[];
  kubeVersion?: string;
  /** API versions for .Capabilities.APIVersions (helm --api-versions), e.g. monitoring.coreos.com/v1 */
  apiVersions?: string[];
  /** default true: CRDs in crds/ are part of what a release installs */
  includeCrds?: boolean;
  skipSchemaValidation?: boolean;
}

export function templateArgs(o: HelmTemplateOptions, valueFiles: string[]): string[] {
  const args = ['template', o.release, o.chart];
  if (o.namespace) args.push('--namespace', o.namespace);
  if (o.version) args.push('--version', o.version);
  if (o.repo) args.push('--repo', o.repo);
  if (o.plainHttp) args.push('--plain-http');
  if (o.includeCrds !== false) args.push('--include-crds');
  if (o.kubeVersion) args.push('--kube-version', o.kubeVersion);
  for (const v of o.apiVersions ?? []) args.push('--api-versions', v);
  if (o.skipSchemaValidation) args.push('--skip-schema-validation');
  for (const f of [...(o.valuesFiles ?? []), ...valueFiles]) args.push('--values', f);
  for (const s of o.set ?? []) args.push('--set', s);
  return args;
}

/** `helm template` with hooks (helm keeps them in the output) and CRDs; returns the YAML stream. */
export async function helmTemplate(o: HelmTemplateOptions): Promise<HelmResult> {
  const dir = o.values?.length ? await mkdtemp(join(tmpdir(), 'sealift-values-')) : undefined;
  try {
    const files: string[] = [];
    for (const [i, v] of (o.values ?? []).entries()) {
      const f = join(dir!, `values-${i}.json`); // JSON is YAML: no quoting surprises
      await writeFile(f, JSON.stringify(v));
      files.push(f);
    }
    return await runHelm(templateArgs(o, files), {
      ...o,
      code: 'RENDER_FAILED',
      what: `helm template ${o.release} (${o.chart}${o.version ? ` ${o.version}` : ''})`,
    });
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}

/**
 * `helm template`, and when the chart's own values.schema.json rejects the values, once more
 * without the schema, with a warning: published charts exist whose schema newer helm rejects
 * even for their default values (helm/helm#31160, the Istio gateway chart 1.23.x).
 */
export async function helmTemplateCoping(o: HelmTemplateOptions, onEvent: EventSink = noEvents): Promise<HelmResult> {
  try {
    return await helmTemplate(o);
  } catch (e) {
    if (!isSchemaError(e) || o.skipSchemaValidation) throw e;
    onEvent({
      type: 'warn',
      code: 'RENDER_FAILED',
      message: `${o.release}: the chart's values schema rejects the values (${(e as Error).message}); rendered with --skip-schema-validation`,
    });
    return helmTemplate({ ...o, skipSchemaValidation: true });
  }
}

export function isSchemaError(e: unknown): boolean {
  const tail = (e as SealiftError | undefined)?.details?.stderrTail;
  return typeof tail === 'string' && /values don't meet the specifications of the schema|jsonschema/i.test(tail);
}

/**
 * `helm show chart`: the Chart.yaml of a chart (a dir, .tgz, `--repo URL chart` or oci://), the
 * newest version when none is given: how sealift resolves "the newest" the way helm itself does.
 */
export async function helmShowChart(
  o: HelmCallOptions & { chart: string; version?: string; repo?: string; plainHttp?: boolean; devel?: boolean },
): Promise<{ name: string; version: string; text: string }> {
  const args = ['show', 'chart', o.chart];
  if (o.version) args.push('--version', o.version);
  else if (o.devel) args.push('--devel');
  if (o.repo) args.push('--repo', o.repo);
  if (o.plainHttp) args.push('--plain-http');
  const r = await runHelm(args, {
    ...o,
    code: 'NOT_FOUND',
    what: `helm show chart ${o.chart}${o.version ? ` ${o.version}` : ''}${o.repo ? ` from ${o.repo}` : ''}`,
  });
  const name = /^name:\s*["']?([^"'\s]+)/m.exec(r.stdout)?.[1];
  const version = /^version:\s*["']?([^"'\s]+)/m.exec(r.stdout)?.[1];
  if (!name || !version)
    throw new SealiftError('TOOL_FAILED', `helm show chart ${o.chart} printed no name and version`, {
      hint: 'Check that the reference names a Helm chart.',
    });
  return { name, version, text: r.stdout };
}

export interface HelmPullOptions extends HelmCallOptions {
  chart: string;
  version: string;
  repo?: string;
  plainHttp?: boolean;
  /** an empty directory: the .tgz lands here */
  destination: string;
}

/** `helm pull` into `destination`; returns the path of the .tgz helm wrote. */
export async function helmPull(o: HelmPullOptions): Promise<string> {
  const args = ['pull', o.chart, '--version', o.version, '--destination', o.destination];
  if (o.repo) args.push('--repo', o.repo);
  if (o.plainHttp) args.push('--plain-http');
  await runHelm(args, { ...o, what: `helm pull ${o.chart} ${o.version}${o.repo ? ` from ${o.repo}` : ''}` });
  const tgz = (await readdir(o.destination)).filter((n) => n.endsWith('.tgz'));
  if (tgz.length !== 1) {
    throw new SealiftError(
      'TOOL_FAILED',
      `helm pull ${o.chart} ${o.version} left ${tgz.length} chart archives in ${o.destination}`,
      {
        hint: 'This is unexpected; run the helm pull by hand to see what it wrote.',
      },
    );
  }
  return join(o.destination, tgz[0]!);
}
