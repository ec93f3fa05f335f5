// checksums.sha256: the grammar, one answer for the writer and every reader.
//
//   file  := line* ; every line ends in LF, the file in a final LF
//   line  := hex64 " " (" " | "*") path      (sha256sum's text and binary forms)
//   path  := a normalized bundle path: relative, "/"-separated, no "", "." or ".." segment, no "\"
//
// Refused, because sealift never writes them and a reader that tolerated them would give a
// second verdict on the same bytes: a CR (CRLF lines: the list went through a text tool), blank
// or comment lines, a path listed twice (even on identical lines), a path not in normal form
// ("./x", "a//b"), checksums.sha256 listing itself. Links cannot be listed: a bundle holds none.
import { SealiftError } from '../errors.ts';
import { CHECKSUMS_FILE } from './names.ts';

const LINE_RE = /^([a-f0-9]{64}) [ *](.+)$/;

/** A bundle path in normal form, or why it is not one. */
export function pathProblem(path: string): string | undefined {
  if (path.includes('\0')) return 'has a NUL byte';
  if (path.startsWith('/')) return 'is absolute';
  if (path.includes('\\') || /^[A-Za-z]:/.test(path)) return 'is a Windows path';
  const parts = path.split('/');
  if (parts.includes('..')) return 'has a ".." segment';
  if (parts.some((p) => p === '' || p === '.')) return 'is not in normal form (empty or "." segment)';
  return undefined;
}

export function formatChecksums(lines: readonly { path: string; hex: string }[]): string {
  return lines.map((l) => `${l.hex}  ${l.path}\n`).join('');
}

/** path -> sha256 hex, in file order; every deviation from the grammar is refused, naming the line. */
export function parseChecksums(text: string, location: string): Map<string, string> {
  const out = new Map<string, string>();
  const refuse = (line: number, why: string): never => {
    throw new SealiftError('BUNDLE_INVALID', `${location}: ${CHECKSUMS_FILE} line ${line} ${why}`, {
      hint: 'The checksum list was altered (sealift writes one "<sha256>  <path>" line per file, LF line ends). Copy the bundle again from the source.',
      details: { file: CHECKSUMS_FILE, line },
    });
  };
  if (text.length > 0 && !text.endsWith('\n')) refuse(text.split('\n').length, 'does not end in a line feed');
  const lines = text.split('\n').slice(0, -1);
  lines.forEach((line, i) => {
    const n = i + 1;
    if (line.includes('\r')) refuse(n, 'ends in CR (CRLF line ends): the list went through a text tool');
    const m = LINE_RE.exec(line);
    if (!m) refuse(n, `is not "<sha256>  <path>": "${line.slice(0, 120)}"`);
    const [, hex = '', path = ''] = m as RegExpExecArray;
    const problem = pathProblem(path);
    if (problem) refuse(n, `names "${path}", which ${problem}`);
    if (path === CHECKSUMS_FILE) refuse(n, `lists ${CHECKSUMS_FILE} itself`);
    if (out.has(path)) refuse(n, `lists "${path}" a second time`);
    out.set(path, hex);
  });
  return out;
}
