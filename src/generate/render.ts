// Handlebars for generated files: noEscape (HTML escaping corrupts YAML) and strict (a missing
// variable is an error, not an empty string). Helpers:
//   {{go ".Environment.Name"}}  -> {{ .Environment.Name }}  (a Go template action for helmfile)
//   {{json value}}              -> a JSON scalar/array, which is valid YAML and safely quoted
//   {{yaml value}}              -> a YAML document body
import Handlebars from 'handlebars';
import { readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { stringify } from 'yaml';
import { SealiftError } from '../errors.ts';

export function toYaml(value: unknown): string {
  return stringify(value, { lineWidth: 0, indent: 2, aliasDuplicateObjects: false });
}

function makeHandlebars(): typeof Handlebars {
  const hb = Handlebars.create();
  hb.registerHelper('go', (expr: unknown) => `{{ ${String(expr)} }}`);
  hb.registerHelper('json', (v: unknown) => JSON.stringify(v));
  hb.registerHelper('yaml', (v: unknown) => toYaml(v).trimEnd());
  // a string as a YAML scalar at `indent`: JSON-quoted on one line, or a literal block when multi-line
  hb.registerHelper('scalar', (v: unknown, indent: unknown) => {
    const s = String(v);
    if (!s.includes('\n') || /[^\S\n]\n|\s$/.test(s)) return JSON.stringify(s);
    const pad = ' '.repeat(Number(indent));
    return `|-\n${s
      .split('\n')
      .map((l) => (l ? pad + l : ''))
      .join('\n')}`;
  });
  return hb;
}

const hb = makeHandlebars();

/** Renders templates/<name> with `context`; errors name the template and what was missing. */
export async function renderTemplate(stackDir: string, name: string, context: object): Promise<string> {
  const file = join(stackDir, 'templates', name);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new SealiftError(
      'TEMPLATE_FAILED',
      `cannot read template ${relative(process.cwd(), file)}: ${(e as Error).message}`,
      {
        hint: 'Templates live in templates/ next to environments/.',
      },
    );
  }
  try {
    return hb.compile(text, { noEscape: true, strict: true })(context);
  } catch (e) {
    throw new SealiftError('TEMPLATE_FAILED', `${relative(process.cwd(), file)}: ${(e as Error).message}`, {
      hint: 'A template names a value the generator does not provide; see HelmfileContext in src/generate/context.ts.',
      cause: e,
    });
  }
}
