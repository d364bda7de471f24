import { mkdir, mkdtemp, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { AGENT_NODE_FLAGS } from '../controlplane/agent/node-flags.js';
import { packageRoot } from '../controlplane/package-root.js';

// The image's entry point (deploy/image/) without Docker: every case runs in a fresh network and mount
// namespace of its own (`unshare --net --mount`), which the kernel removes when the shell exits, also
// when a test fails. Nothing is written to this machine's rules, alternatives or /usr/local/sbin.
const root = packageRoot();
const modeScript = join(root, 'deploy/image/iptables-mode.sh');
const entrypoint = join(root, 'deploy/image/entrypoint.sh');
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Runs a shell script in new, empty network and mount namespaces. */
async function inFreshNamespaces(script: string, env: Record<string, string> = {}) {
  const result = await execa('unshare', ['--net', '--mount', '--', 'sh', '-ec', script], {
    reject: false, cwd: root, env: { PATH: SYSTEM_PATH, ...env }, extendEnv: false,
  });
  return { stdout: String(result.stdout).trim(), stderr: String(result.stderr), exitCode: result.exitCode };
}

async function linkDirectory(t: { teardown: (fn: () => Promise<void>) => void }) {
  const directory = await mkdtemp(join(tmpdir(), 'ferry-iptables-links-'));
  t.teardown(() => rm(directory, { recursive: true, force: true }));
  return directory;
}

/** GIVEN the rules that `setup` loads into an empty node, THEN the script picks `expected`. */
const picks = test.macro(async (t, setup: string, expected: 'legacy' | 'nft') => {
  const directory = await linkDirectory(t);
  const result = await inFreshNamespaces(`${setup}\n"${modeScript}" "${directory}"\n"${directory}/iptables" --version\n"${directory}/ip6tables-save" --version`);
  t.is(result.exitCode, 0, result.stderr);
  const [mode, v4, v6] = result.stdout.split('\n');
  t.is(mode, expected);
  const variant = expected === 'legacy' ? '(legacy)' : '(nf_tables)';
  t.true(v4!.includes(variant), v4);
  t.true(v6!.includes(variant), v6);
});

test('kernel: an empty node gets nft, as Debian\'s default', picks, ':', 'nft');
test('kernel: rules in iptables-legacy only select legacy', picks, 'iptables-legacy -A FORWARD -j ACCEPT', 'legacy');
test('kernel: IPv6 rules in ip6tables-legacy only select legacy', picks, 'ip6tables-legacy -A INPUT -j ACCEPT', 'legacy');
test('kernel: rules in iptables-nft only select nft', picks, 'iptables-nft -A FORWARD -j ACCEPT', 'nft');
test('kernel: more legacy rules than nft rules select legacy', picks,
  'for port in 1 2 3; do iptables-legacy -A INPUT -p tcp --dport $port -j ACCEPT; done\niptables-nft -A INPUT -j ACCEPT', 'legacy');
test('kernel: the kubelet\'s hint chain in legacy decides over more nft rules', picks,
  'iptables-legacy -t mangle -N KUBE-IPTABLES-HINT\nfor port in 1 2 3; do iptables-nft -A INPUT -p tcp --dport $port -j ACCEPT; done', 'legacy');
test('kernel: the kubelet\'s canary in nft decides over more legacy rules', picks,
  'ip6tables-nft -t mangle -N KUBE-KUBELET-CANARY\nfor port in 1 2 3; do iptables-legacy -A INPUT -p tcp --dport $port -j ACCEPT; done', 'nft');
test('kernel: a previous proxy\'s chains decide over more rules of other tools', picks,
  'iptables-legacy -t nat -N FERRY-SERVICES\nfor port in 1 2 3; do iptables-nft -A INPUT -p tcp --dport $port -j ACCEPT; done', 'legacy');
test('kernel: kube-proxy\'s chains count as a proxy\'s chains', picks,
  'iptables-nft -t nat -N KUBE-SERVICES\niptables-nft -t nat -N KUBE-NODEPORTS\nfor port in 1 2 3; do iptables-legacy -A INPUT -p tcp --dport $port -j ACCEPT; done', 'nft');

test('FERRY_IPTABLES_MODE chooses without detection, and any other value is refused', async (t) => {
  const directory = await linkDirectory(t);
  const forced = await execa(modeScript, [directory], { env: { FERRY_IPTABLES_MODE: 'legacy', PATH: SYSTEM_PATH }, extendEnv: false });
  t.is(forced.stdout, 'legacy');
  const links = ['iptables', 'iptables-save', 'iptables-restore', 'ip6tables', 'ip6tables-save', 'ip6tables-restore'];
  t.deepEqual(await Promise.all(links.map((name) => readlink(join(directory, name)))),
    links.map((name) => `/usr/sbin/${name.replace(/^(ip6?tables)/, '$1-legacy')}`));
  const refused = await execa(modeScript, [], { env: { FERRY_IPTABLES_MODE: 'iptables', PATH: SYSTEM_PATH }, extendEnv: false, reject: false });
  t.is(refused.exitCode, 2);
  t.regex(String(refused.stderr), /FERRY_IPTABLES_MODE must be legacy or nft, got 'iptables'/);
});

test('the entry point runs ferry with the agent\'s Node.js flags and the container\'s arguments', async (t) => {
  // FERRY_HOME holds a stand-in for ferry that prints how node ran it.
  const home = await linkDirectory(t);
  await mkdir(join(home, 'bin'));
  await writeFile(join(home, 'bin', 'ferry.js'), 'console.log(JSON.stringify({ flags: process.execArgv, args: process.argv.slice(2) }));\n');
  const links = await linkDirectory(t);
  const result = await execa(entrypoint, ['agent', '--node', 'node-a'], {
    env: { PATH: `${dirname(process.execPath)}:${SYSTEM_PATH}`, FERRY_HOME: home, FERRY_IPTABLES_DIR: links, FERRY_IPTABLES_MODE: 'nft' }, extendEnv: false, reject: false,
  });
  t.is(result.exitCode, 0, String(result.stderr));
  t.deepEqual(JSON.parse(String(result.stdout)), { flags: [...AGENT_NODE_FLAGS], args: ['agent', '--node', 'node-a'] });
});

// The image's PATH lookups end in /usr/local/sbin first (the runner's fixed PATH); here a tmpfs over it,
// in this mount namespace only, stands in for the DaemonSet's emptyDir.
const ferryWritesTo = test.macro(async (t, setup: string, used: 'legacy' | 'nft') => {
  const other = used === 'legacy' ? 'nft' : 'legacy';
  const result = await inFreshNamespaces([
    'mount -t tmpfs ferry-links /usr/local/sbin',
    setup,
    `"${entrypoint}" apply --node node-a -f examples/cluster.yaml --backend iptables >&2`,
    `echo "$(iptables-${used}-save -t nat | grep -c '^:FERRY-' || true) $(iptables-${other}-save -t nat 2>/dev/null | grep -c '^:FERRY-' || true)"`,
  ].join('\n'), { FERRY_HOME: root, HOME: tmpdir() });
  t.is(result.exitCode, 0, result.stderr);
  t.regex(result.stderr, new RegExp(`ferry image: iptables mode ${used} \\(/usr/local/sbin/iptables -> /usr/sbin/iptables-${used}\\)`));
  const [inUsed, inOther] = result.stdout.split(' ').map(Number);
  t.true(inUsed! > 0, `ferry's chains in iptables-${used}: ${inUsed}`);
  t.is(inOther, 0, `ferry's chains in iptables-${other}`);
});

test.serial('kernel: through the entry point, ferry writes its iptables rules into legacy on a legacy node', ferryWritesTo,
  'iptables-legacy -t mangle -N KUBE-IPTABLES-HINT', 'legacy');
test.serial('kernel: through the entry point, ferry writes its iptables rules into nft on an nft node', ferryWritesTo,
  'iptables-nft -t mangle -N KUBE-IPTABLES-HINT', 'nft');
