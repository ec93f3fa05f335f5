// runTool with the real helm: what a caller gets back, and what a failed run tells a person
// (the line that matters, argv without secrets, exit code, stderr) and a --json reader.
import { createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { isSealiftError } from '../../src/errors.ts';
import { runTool, ToolError } from '../../src/exec.ts';
import { freePort } from '../support/process.ts';

async function failure(p: Promise<unknown>): Promise<ToolError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ToolError);
  return e as ToolError;
}

describe('runTool', () => {
  it('returns what the tool printed', async () => {
    const r = await runTool('helm', ['version', '--short']);
    expect(r.stdout).toMatch(/^v3\.\d+\.\d+/);
    expect(r.durationMs).toBeGreaterThanOrEqual(0);
  });

  it("a failed run: one line with the tool's complaint, argv with secrets hidden, exit code and stderr", async () => {
    const port = await freePort(); // nothing listens there
    const err = await failure(
      runTool('helm', [
        'pull',
        'app',
        '--version',
        '1.0.0',
        '--repo',
        `http://127.0.0.1:${port}/charts`,
        '--username',
        'u',
        '--password',
        's3cret',
      ]),
    );
    expect(isSealiftError(err)).toBe(true);
    expect(err.code).toBe('TOOL_FAILED');
    expect(err.shortMessage).toBe('helm pull failed (exit 1)');
    expect(err.message).toMatch(/^helm pull failed \(exit 1\): .*127\.0\.0\.1/);
    expect(err.message).not.toContain('Error:');
    expect(err.details).toMatchObject({ tool: 'helm', exitCode: 1 });
    expect(err.details?.argv).toEqual(expect.arrayContaining(['--password', '***', '--username', 'u']));
    expect(err.details?.stderrTail).toContain('connection refused');
    expect(JSON.stringify(err.toJSON())).not.toContain('s3cret');
    expect(err.hint).not.toContain('s3cret');
    expect(err.hint).toContain('stderr:');
  });

  it('takes the code, the subject and the reason picker from the caller, and names the directory', async () => {
    const err = await failure(
      runTool('helm', ['template', 'r', './no-such-chart'], {
        cwd: '/',
        code: 'RENDER_FAILED',
        what: 'rendering r',
        reason: (stderr) => `[${stderr.split('\n')[0]}]`,
      }),
    );
    expect(err.code).toBe('RENDER_FAILED');
    expect(err.exitCode).toBe(5);
    expect(err.message).toMatch(/^rendering r failed \(exit 1\) in \/: \[Error: .*no-such-chart/);
    expect(err.details?.cwd).toBe('/');
  });

  it('an aborted run says canceled', async () => {
    // a chart server that accepts and never answers: helm waits until the signal stops it
    const sockets: Socket[] = [];
    const server = createServer((s) => void sockets.push(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    try {
      const ac = new AbortController();
      const run = runTool('helm', ['pull', 'app', '--repo', `http://127.0.0.1:${port}/charts`], { signal: ac.signal });
      setTimeout(() => ac.abort(), 300);
      const err = await failure(run);
      expect(err.message).toMatch(/^helm pull failed \(exit \S+\): canceled$/);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});
