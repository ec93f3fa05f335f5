// Compatibility data (compat/*.yaml): which releases are which component, and the ranges each
// component documents, with their sources. Reading is the only I/O here; evaluating is pure.
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { z } from 'zod';
import { SealiftError } from '../errors.ts';
import { PROJECT_ROOT } from '../tools.ts';
import { parseRange, type VersionRange } from './range.ts';

export const DEFAULT_COMPAT_DIR = join(PROJECT_ROOT, 'compat');

const ComponentSchema = z.strictObject({
  title: z.string().min(1),
  /** a release is this component when its chart name is listed, or one of its release files matches a glob */
  match: z
    .strictObject({
      charts: z.array(z.string().min(1)).default([]),
      files: z.array(z.string().min(1)).default([]),
    })
    .refine((m) => m.charts.length + m.files.length > 0, 'match needs charts or files'),
});

const RuleSchema = z
  .strictObject({
    component: z.string().min(1),
    /** the component versions the rule is about */
    versions: z.string().min(1),
    /** the Kubernetes versions it works with (or documents) */
    kubernetes: z.string().min(1).optional(),
    /** another component, in versions it works with */
    requires: z.strictObject({ component: z.string().min(1), versions: z.string().min(1) }).optional(),
    level: z.enum(['hard', 'warn']),
    why: z.string().min(1),
    /** where the range is documented (URL) */
    source: z.string().min(1),
  })
  .refine((r) => (r.kubernetes === undefined) !== (r.requires === undefined), {
    message: 'a rule needs exactly one of "kubernetes" or "requires"',
  });

/** A built-in API version and the Kubernetes versions that serve it. */
const ApiSchema = z.strictObject({
  apiVersion: z.string().min(1),
  kinds: z.array(z.string().min(1)).min(1),
  kubernetes: z.string().min(1),
  source: z.string().min(1),
});

const CompatFileSchema = z.strictObject({
  components: z.record(z.string(), ComponentSchema).default({}),
  rules: z.array(RuleSchema).default([]),
  /** API groups the API server serves itself ('' = core) */
  builtinGroups: z.array(z.string()).default([]),
  apis: z.array(ApiSchema).default([]),
});

export type CompatComponent = z.output<typeof ComponentSchema>;

export interface CompatRule {
  component: string;
  versions: VersionRange;
  kubernetes?: VersionRange;
  requires?: { component: string; versions: VersionRange };
  level: 'hard' | 'warn';
  why: string;
  source: string;
  /** file:line the rule was read from */
  where: string;
}

export interface BuiltinApi {
  apiVersion: string;
  kinds: string[];
  kubernetes: VersionRange;
  source: string;
}

export interface CompatData {
  components: Record<string, CompatComponent>;
  rules: CompatRule[];
  builtinGroups: string[];
  apis: BuiltinApi[];
}

/** The line of a path in a parsed file (its nearest existing ancestor's). */
function lineOf(node: Node | null, path: readonly PropertyKey[], lines: LineCounter): number {
  let line = 1;
  let cur: unknown = node;
  for (const key of path) {
    let next: unknown;
    if (isMap(cur)) {
      const pair = cur.items.find((p) => isScalar(p.key) && p.key.value === key);
      if (pair && isScalar(pair.key) && pair.key.range) line = lines.linePos(pair.key.range[0]).line;
      next = pair?.value;
    } else if (isSeq(cur) && typeof key === 'number') {
      next = cur.items[key];
      const range = (next as { range?: [number, number, number] } | undefined)?.range;
      if (range) line = lines.linePos(range[0]).line;
    }
    if (next === undefined) break;
    cur = next;
  }
  return line;
}

async function readCompatFile(file: string): Promise<CompatData> {
  const show = relative(process.cwd(), file) || file;
  const lines = new LineCounter();
  const doc = parseDocument(await readFile(file, 'utf8'), { lineCounter: lines, uniqueKeys: true });
  const fail = (path: readonly PropertyKey[], message: string): never => {
    const line = lineOf(doc.contents, path, lines);
    throw new SealiftError('CONFIG_INVALID', `${show}:${line}: ${path.join('.') || '(top level)'}: ${message}`, {
      hint: 'compat/README.md describes the format: components {title, match {charts, files}}, rules {component, versions, kubernetes | requires, level, why, source}, builtinGroups, apis {apiVersion, kinds, kubernetes, source}.',
      details: { file: show, line },
    });
  };
  if (doc.errors[0]) fail([], `YAML syntax error: ${doc.errors[0].message.split('\n')[0]}`);
  const parsed = CompatFileSchema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const extra = issue.code === 'unrecognized_keys' ? [issue.keys[0]!] : [];
    fail([...issue.path, ...extra], extra.length ? `unknown key "${extra[0]}"` : issue.message);
  }
  const data = parsed.data!;
  const rules = data.rules.map((r, i): CompatRule => {
    const where = `${show}:${lineOf(doc.contents, ['rules', i], lines)}`;
    return {
      component: r.component,
      versions: parseRange(r.versions, `${where}: versions`),
      ...(r.kubernetes ? { kubernetes: parseRange(r.kubernetes, `${where}: kubernetes`) } : {}),
      ...(r.requires
        ? {
            requires: {
              component: r.requires.component,
              versions: parseRange(r.requires.versions, `${where}: requires.versions`),
            },
          }
        : {}),
      level: r.level,
      why: r.why,
      source: r.source,
      where,
    };
  });
  const apis = data.apis.map((a, i) => ({
    ...a,
    kubernetes: parseRange(a.kubernetes, `${show}:${lineOf(doc.contents, ['apis', i], lines)}: kubernetes`),
  }));
  return { components: data.components, rules, builtinGroups: data.builtinGroups, apis };
}

/** Every compat/*.yaml of the given directories, in order; rules must name known components. */
export async function loadCompat(dirs: readonly string[] = [DEFAULT_COMPAT_DIR]): Promise<CompatData> {
  const out: CompatData = { components: {}, rules: [], builtinGroups: [], apis: [] };
  for (const dir of dirs) {
    const names = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
      throw new SealiftError('USAGE', `cannot read the compatibility directory ${dir}: ${e.message}`, {
        hint: 'Give a directory holding compat *.yaml files (--compat DIR).',
      });
    });
    for (const name of names.filter((n) => /\.ya?ml$/.test(n)).sort()) {
      const data = await readCompatFile(join(dir, name));
      Object.assign(out.components, data.components);
      out.rules.push(...data.rules);
      out.builtinGroups.push(...data.builtinGroups);
      out.apis.push(...data.apis);
    }
  }
  for (const r of out.rules) {
    for (const c of [r.component, r.requires?.component].filter((x): x is string => x !== undefined)) {
      if (!out.components[c])
        throw new SealiftError('CONFIG_INVALID', `${r.where}: the rule names component "${c}", which no file defines`, {
          hint: `Known components: ${Object.keys(out.components).join(', ') || 'none'}.`,
        });
    }
  }
  return out;
}
