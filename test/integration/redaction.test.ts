// Bug 3 (issue 8): a password in a repository URL (`http://bob:SECRET@host/charts`) must not reach
// any output: not the message, not the hint's argv, not helm's own stderr, not an event, not
// --json. Every failing command below is run as a user runs it, and ALL of its output is searched.
import { describe, expect, it } from 'vitest';
import { startChartServers } from '../support/chart-servers.ts';
import { runSealift } from '../support/cli.ts';
import { freePort } from '../support/process.ts';

const SECRET = 'S3cr3tPa55';
const withUser = (url: string) => url.replace('://', `://bob:${SECRET}@`);

describe('bug 3: passwords in URLs never reach the output', () => {
  it('images scan with --repo, oci:// and manifest URLs carrying user:password, failing several ways', async () => {
    await using charts = await startChartServers({ oci: false, charts: ['kserve-v0.15.2.tgz'] });
    const closed = `127.0.0.1:${await freePort()}`;
    const live = new URL(charts.helmRepoUrl).host;
    const cases: { name: string; args: string[]; shows: string }[] = [
      // nothing listens: the issue's own case
      {
        name: 'repo, refused',
        args: ['images', 'scan', 'kserve', '--repo', withUser(`http://${closed}/charts`)],
        shows: closed,
      },
      // a live repository that has no such version: helm names the repository URL in its stderr
      {
        name: 'repo, no such version',
        args: ['images', 'scan', 'kserve', '--repo', withUser(charts.helmRepoUrl), '--version', '9.9.9'],
        shows: live,
      },
      {
        name: 'oci chart, refused',
        args: ['images', 'scan', withUser(`oci://${closed}/charts/kserve`)],
        shows: closed,
      },
      {
        name: 'manifest URL, refused',
        args: ['images', 'scan', withUser(`http://${closed}/release/serving-core.yaml`)],
        shows: closed,
      },
      {
        name: 'manifest URL, 404',
        args: ['images', 'scan', withUser(`${charts.filesUrl}/knative/serving/releases/download/v0.0.0/nope.yaml`)],
        shows: live,
      },
    ];
    for (const c of cases) {
      for (const json of [false, true]) {
        const r = await runSealift([...c.args, ...(json ? ['--json'] : [])], { env: charts.helmEnv });
        const all = `${r.stdout}\n${r.stderr}`;
        const label = `${c.name}${json ? ' --json' : ''}:\n${all}`;
        expect(r.exitCode, label).not.toBe(0);
        expect(all, label).not.toContain(SECRET);
        // the server is still named, to act on
        expect(all, label).toContain(c.shows);
      }
    }
  }, 120_000);
});
