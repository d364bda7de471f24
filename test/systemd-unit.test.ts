import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { execa, execaSync } from 'execa';
import { parseKubeProxyConfiguration } from '../controlplane/config/kube-proxy-config.js';
import { AGENT_NODE_FLAGS } from '../controlplane/agent/node-flags.js';
import { packageRoot } from '../controlplane/package-root.js';

// deploy/systemd/ferry.service cannot be started here (no systemd as PID 1): its ExecStart is expanded as
// systemd expands it (systemd.service(5), "Command lines") and the arguments checked, and the unit is
// checked by `systemd-analyze verify` where that is installed.
const root = packageRoot();
const unitPath = join(root, 'deploy/systemd/ferry.service');

/** The value of `key` in the unit's [Service] section, continuation lines joined. */
function serviceSetting(unit: string, key: string): string {
  const joined = unit.replace(/\\\n/g, ' ');
  const section = joined.slice(joined.indexOf('[Service]'));
  const line = section.split('\n').find((entry) => entry.startsWith(`${key}=`));
  if (!line) throw new Error(`no ${key}= in [Service]`);
  return line.slice(key.length + 1);
}

/**
 * A command line as systemd turns it into argv: words split at whitespace, "..." and '...' quoting,
 * ${VAR} replaced inside its word (one argument, even when empty), $VAR alone as a word split at
 * whitespace into zero or more arguments.
 */
function expandCommandLine(line: string, environment: Record<string, string>): string[] {
  const words: string[] = [];
  const pattern = /\s*((?:"[^"]*"|'[^']*'|[^\s"']+)+)/gy;
  for (const match of line.matchAll(pattern)) {
    const raw = match[1]!;
    const simple = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(raw);
    if (simple) {
      words.push(...(environment[simple[1]!] ?? '').split(/\s+/).filter(Boolean));
      continue;
    }
    const unquoted = raw.replace(/"([^"]*)"|'([^']*)'/g, (_, double: string | undefined, single: string | undefined) => double ?? single ?? '');
    words.push(unquoted.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => environment[name] ?? ''));
  }
  return words;
}

const execStart = async (environment: Record<string, string>) => expandCommandLine(serviceSetting(await readFile(unitPath, 'utf8'), 'ExecStart'), environment);

test('the expansion follows systemd: ${VAR} keeps its word when empty, $VAR alone splits or vanishes', (t) => {
  t.deepEqual(expandCommandLine('a --x=${X} ${X} $X "b c" d', { X: '' }), ['a', '--x=', '', 'b c', 'd']);
  t.deepEqual(expandCommandLine('a --x=${X} $X', { X: 'p q' }), ['a', '--x=p q', 'p', 'q']);
});

test('with FERRY_NODE and FERRY_BACKEND set, the agent gets them as kube-proxy\'s flags, and node the agent\'s flags', async (t) => {
  t.deepEqual(await execStart({ FERRY_NODE: 'node-a', FERRY_BACKEND: 'iptables' }), [
    '/usr/bin/env', 'node', ...AGENT_NODE_FLAGS, '/opt/ferry/bin/ferry.js', 'agent', '--hostname-override=node-a', '--proxy-mode=iptables',
    '--kubeconfig=/etc/ferry/kubeconfig', '--config=/etc/ferry/kube-proxy.yaml',
  ]);
});

test('empty or unset, FERRY_NODE and FERRY_BACKEND stay one empty flag each, and no flag takes the next one as its value', async (t) => {
  const expected = [
    '/usr/bin/env', 'node', ...AGENT_NODE_FLAGS, '/opt/ferry/bin/ferry.js', 'agent', '--hostname-override=', '--proxy-mode=',
    '--kubeconfig=/etc/ferry/kubeconfig', '--config=/etc/ferry/kube-proxy.yaml',
  ];
  t.deepEqual(await execStart({ FERRY_NODE: '', FERRY_BACKEND: '' }), expected);
  t.deepEqual(await execStart({}), expected);
});

test('the environment file is optional, and the unit stops the agent with SIGTERM (which keeps the rules: test/agent-process.test.ts) and restarts it', async (t) => {
  const unit = await readFile(unitPath, 'utf8');
  t.is(serviceSetting(unit, 'EnvironmentFile'), '-/etc/ferry/ferry.env');
  t.is(serviceSetting(unit, 'KillSignal'), 'SIGTERM');
  t.is(serviceSetting(unit, 'Restart'), 'always');
});

test('the unit\'s KubeProxyConfiguration parses without warnings', async (t) => {
  const { config, warnings } = parseKubeProxyConfiguration(await readFile(join(root, 'deploy/systemd/kube-proxy.yaml'), 'utf8'));
  t.deepEqual(warnings, []);
  t.deepEqual(config.clusterCIDRs, ['10.244.0.0/16', 'fd00:244::/56']);
});

test('the agent accepts the flags the unit passes', async (t) => {
  const help = await execa(process.execPath, [join(root, 'bin/ferry.js'), 'agent', '--help']);
  for (const flag of ['--hostname-override', '--proxy-mode', '--kubeconfig', '--config']) t.regex(String(help.stdout), new RegExp(`^\\s+${flag} `, 'm'), flag);
});

const analyze = execaSync('systemd-analyze', ['--version'], { reject: false });
(analyze.exitCode === 0 ? test : test.skip)('systemd-analyze verify accepts the unit', async (t) => {
  const result = await execa('systemd-analyze', ['verify', unitPath], { reject: false });
  t.is(result.exitCode, 0, String(result.stderr));
  t.is(String(result.stderr).trim(), '', 'no warnings');
});
