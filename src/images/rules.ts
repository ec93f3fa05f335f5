// Image rules: what the generic extractor cannot know about a particular chart, as data.
// A rule file (rules/*.yaml, or any directory a user passes) holds a list of rules; each rule
// matches resources by kind/name/namespace/apiVersion/chart/release (globs) and does one thing:
//
//   exclude:  { field?, value? }  the matched candidates are not images (placeholders, examples, unused)
//   knobless: { field?, value? }  the images are real but no chart value points them elsewhere:
//                                 listed, and reported as warnings by `verify`
//   inject:   { from, image, consumes? }  an image that appears in no manifest but that a webhook or
//                                 operator adds at admission time, composed from fields under `from`
//   values:   { when?, unless?, set }  values a chart needs once its images are moved (conditions on
//                                 the chart's values; `match` by chart/release only): knob inference
//                                 renders with them and the airgap values carry them
//
// Field paths are dotted (`data.agent.image`, `spec.containers[0].image`); a string holding
// embedded JSON/YAML continues the path (`data.values.global.hub`); a line found in text that
// does not parse is `@L<n>`. In field globs `*` matches within one segment, `**` across segments.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LineCounter, parseDocument, isNode } from 'yaml';
import { z } from 'zod';
import { SealiftError } from '../errors.ts';
import { PROJECT_ROOT } from '../tools.ts';

export const DEFAULT_RULES_DIR = join(PROJECT_ROOT, 'rules');

const resourceMatch = z
  .object({
    kind: z.string().optional(),
    name: z.string().optional(),
    namespace: z.string().optional(),
    apiVersion: z.string().optional(),
    chart: z.string().optional(),
    release: z.string().optional(),
  })
  .strict();

const fieldMatch = z
  .object({ field: z.string().min(1).optional(), value: z.string().min(1).optional() })
  .strict()
  .refine((m) => m.field !== undefined || m.value !== undefined, { message: 'give field, value or both' });

/** `{field, value}`: the field's value matches the glob (or one of the globs); no value: the field is set. */
const condition = z
  .object({ field: z.string().min(1), value: z.union([z.string(), z.array(z.string()).min(1)]).optional() })
  .strict();
/** one condition or several: every `when` must hold, no `unless` may */
const conditions_ = z.union([condition, z.array(condition).min(1)]);

const injectTemplate = z.union([
  z.string().min(1),
  z.object({ template: z.string().min(1), when: conditions_.optional(), unless: conditions_.optional() }).strict(),
]);

const injectSpec = z
  .object({
    from: z.string().min(1),
    image: z.union([injectTemplate, z.array(injectTemplate).min(1)]),
    consumes: z.array(z.string().min(1)).optional(),
  })
  .strict();

const addedImage = z.union([
  z.string().min(1),
  z.object({ image: z.string().min(1), when: conditions_.optional(), unless: conditions_.optional() }).strict(),
]);

const addSpec = z
  .object({ when: conditions_.optional(), unless: conditions_.optional(), images: z.array(addedImage).min(1) })
  .strict();

/** values a chart needs beside its moved image knobs, when its own values say so (conditions on them) */
const valuesSpec = z
  .object({
    when: conditions_.optional(),
    unless: conditions_.optional(),
    set: z.record(z.string().min(1), z.unknown()).refine((o) => Object.keys(o).length > 0, 'set at least one value'),
  })
  .strict();

const ruleSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'lowercase letters, digits, ".", "_" and "-"'),
    description: z.string().min(1),
    match: resourceMatch.optional(),
    exclude: fieldMatch.optional(),
    knobless: fieldMatch.optional(),
    inject: injectSpec.optional(),
    add: addSpec.optional(),
    values: valuesSpec.optional(),
  })
  .strict()
  .refine((r) => [r.exclude, r.knobless, r.inject, r.add, r.values].filter((x) => x !== undefined).length === 1, {
    message: 'a rule has exactly one of exclude, knobless, inject, add, values',
  });

const ruleFileSchema = z.object({ rules: z.array(ruleSchema) }).strict();

type RuleInput = z.infer<typeof ruleSchema>;

export interface ResourceIdentity {
  kind: string;
  name: string;
  namespace?: string;
  apiVersion?: string;
  chart?: string;
  release: string;
}

export interface CompiledMatch {
  test(r: ResourceIdentity): boolean;
}

export interface FieldTest {
  field?: RegExp;
  value?: RegExp;
}

interface RuleBase {
  id: string;
  description: string;
  /** `file:line` where the rule is written */
  where: string;
  match: CompiledMatch;
}

export type ImageRule =
  | (RuleBase & { type: 'exclude'; test: FieldTest })
  | (RuleBase & { type: 'knobless'; test: FieldTest })
  | (RuleBase & { type: 'inject'; from: string; images: InjectTemplate[]; consumes: string[] })
  | (RuleBase & { type: 'add'; when?: Condition[]; unless?: Condition[]; images: AddedImage[] })
  | (RuleBase & { type: 'values'; when?: Condition[]; unless?: Condition[]; set: Record<string, unknown> });

/** A test of one field (a missing field reads as ""). */
export interface Condition {
  field: string;
  test(value: string): boolean;
}

/** A template with optional conditions on fields under `from`. */
export interface InjectTemplate {
  template: string;
  when?: Condition[];
  unless?: Condition[];
}

/** An image an operator installs when the matched resource exists (conditions on its fields). */
export interface AddedImage {
  image: string;
  when?: Condition[];
  unless?: Condition[];
}

export interface RuleSet {
  rules: ImageRule[];
}

export const EMPTY_RULES: RuleSet = { rules: [] };

const escapeRe = (s: string) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');

/** Glob for names and values: `*` matches anything. */
export function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map(escapeRe).join('.*')}$`);
}

/** Glob for field paths: `**` crosses segments, `*` stays within one (no `.`, `[` or `]`). */
export function fieldGlobToRegExp(glob: string): RegExp {
  const parts = glob.split('**').map((p) => p.split('*').map(escapeRe).join('[^.\\[\\]]*'));
  return new RegExp(`^${parts.join('.*')}$`);
}

function compileMatch(m: RuleInput['match']): CompiledMatch {
  const tests: [keyof ResourceIdentity, RegExp][] = [];
  for (const key of ['kind', 'name', 'namespace', 'apiVersion', 'chart', 'release'] as const) {
    const g = m?.[key];
    if (g !== undefined) tests.push([key, globToRegExp(g)]);
  }
  return { test: (r) => tests.every(([k, re]) => re.test(r[k] ?? '')) };
}

function compileFieldTest(m: { field?: string | undefined; value?: string | undefined }): FieldTest {
  return {
    ...(m.field !== undefined ? { field: fieldGlobToRegExp(m.field) } : {}),
    ...(m.value !== undefined ? { value: globToRegExp(m.value) } : {}),
  };
}

export function fieldTestMatches(t: FieldTest, path: string, value: string): boolean {
  return (t.field === undefined || t.field.test(path)) && (t.value === undefined || t.value.test(value));
}

type ConditionInput = z.infer<typeof condition>;

function compileCondition(c: ConditionInput): Condition {
  if (c.value === undefined) return { field: c.field, test: (v) => v !== '' };
  const globs = (Array.isArray(c.value) ? c.value : [c.value]).map(globToRegExp);
  return { field: c.field, test: (v) => globs.some((g) => g.test(v)) };
}

type ConditionsInput = ConditionInput | ConditionInput[] | undefined;

function conditions(x: { when?: ConditionsInput; unless?: ConditionsInput }): {
  when?: Condition[];
  unless?: Condition[];
} {
  const list = (c: ConditionsInput) => (c === undefined ? [] : Array.isArray(c) ? c : [c]).map(compileCondition);
  return {
    ...(x.when ? { when: list(x.when) } : {}),
    ...(x.unless ? { unless: list(x.unless) } : {}),
  };
}

/** Placeholders `{a.b}` used by an inject template. */
export function templateFields(template: string): string[] {
  return [...template.matchAll(/\{([^{}]+)\}/g)].map((m) => (m[1] ?? '').trim());
}

function compileRule(r: RuleInput, where: string): ImageRule {
  const base = { id: r.id, description: r.description.trim(), where, match: compileMatch(r.match) };
  if (r.exclude) return { ...base, type: 'exclude', test: compileFieldTest(r.exclude) };
  if (r.knobless) return { ...base, type: 'knobless', test: compileFieldTest(r.knobless) };
  if (r.values) return { ...base, type: 'values', ...conditions(r.values), set: r.values.set };
  if (r.add) {
    const images: AddedImage[] = r.add.images.map((i) =>
      typeof i === 'string' ? { image: i } : { image: i.image, ...conditions(i) },
    );
    return { ...base, type: 'add', ...conditions(r.add), images };
  }
  const inject = r.inject!;
  const images: InjectTemplate[] = (Array.isArray(inject.image) ? inject.image : [inject.image]).map((t) =>
    typeof t === 'string' ? { template: t } : { template: t.template, ...conditions(t) },
  );
  const consumes = [...new Set([...images.flatMap((t) => templateFields(t.template)), ...(inject.consumes ?? [])])];
  return { ...base, type: 'inject', from: inject.from, images, consumes };
}

/** Parses one rule file's text; errors name the file, line and key. */
export function parseRuleFile(text: string, file: string): ImageRule[] {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    const err = doc.errors[0]!;
    const pos = lineCounter.linePos(err.pos[0]);
    throw new SealiftError('CONFIG_INVALID', `${file}:${pos.line}: ${err.message.split('\n')[0]}`, {
      hint: 'Fix the YAML syntax of the rule file.',
    });
  }
  const data: unknown = doc.toJS();
  const lineOf = (path: readonly PropertyKey[]): number => {
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n) as (string | number)[], true);
      if (isNode(node) && node.range) return lineCounter.linePos(node.range[0]).line;
    }
    return 1;
  };
  const parsed = ruleFileSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = issue.path.map(String).join('.');
    throw new SealiftError(
      'CONFIG_INVALID',
      `${file}:${lineOf(issue.path)}: ${key ? `${key}: ` : ''}${issue.message}`,
      {
        hint: 'See rules/README.md for the rule file format.',
        details: { file, path: key },
      },
    );
  }
  return parsed.data.rules.map((r, i) => compileRule(r, `${file}:${lineOf(['rules', i])}`));
}

/** Reads every `*.yaml`/`*.yml` in the directories (sorted, so the order is stable). Ids must be unique. */
export async function loadRules(dirs: string[] = [DEFAULT_RULES_DIR]): Promise<RuleSet> {
  const rules: ImageRule[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => /\.ya?ml$/.test(n)).sort();
    } catch (e) {
      throw new SealiftError('CONFIG_INVALID', `cannot read the rules directory ${dir}: ${(e as Error).message}`, {
        hint: 'Pass an existing directory of rule files with --rules.',
      });
    }
    for (const name of names) {
      const file = join(dir, name);
      rules.push(...parseRuleFile(await readFile(file, 'utf8'), file));
    }
  }
  const seen = new Map<string, string>();
  for (const r of rules) {
    const prev = seen.get(r.id);
    if (prev) {
      throw new SealiftError('CONFIG_INVALID', `${r.where}: rule id "${r.id}" is already used at ${prev}`, {
        hint: 'Give every rule its own id.',
      });
    }
    seen.set(r.id, r.where);
  }
  return { rules };
}
