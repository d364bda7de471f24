import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { execa, execaSync } from 'execa';
import { parse } from 'yaml';
import { packageRoot } from '../controlplane/package-root.js';

// Vagrant cannot bring up VMs here (no hypervisor). What it would do is checked in two steps:
// 1. the Vagrantfile is loaded with a stand-in for Vagrant's configuration API (test/helpers/
//    vagrantfile-plan.rb): machines, NICs and provisioners with their environment, as Vagrant reads them;
// 2. each machine's provisioners run in that order, as root, with the network tools, package managers,
//    systemctl and the k3s installer replaced by stubs that record their arguments, in a mount and
//    network namespace of the test's own where /etc, /opt and /var/lib are overlays: what the scripts
//    write lands in the overlays' upper directories (inspected afterwards), never on this machine.
const root = packageRoot();
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const hasRuby = execaSync('ruby', ['--version'], { reject: false }).exitCode === 0;
const withRuby = hasRuby ? test : test.skip;

interface Provisioner { name: string; type: string; path: string; env: Record<string, string> }
interface Machine { name: string; options: Record<string, unknown>; hostname: string; networks: { type: string; ip: string }[]; provisioners: Provisioner[]; providers: Record<string, Record<string, unknown>> }
interface Plan { box: string; synced_folders: { source: string; destination: string; options: { type: string; rsync__exclude: string[] } }[]; machines: Machine[] }

/** Loads a copy of the Vagrantfile in `directory` (its .vagrant/ goes there too) and returns what it configures. */
async function plan(directory: string): Promise<Plan> {
  await copyFile(join(root, 'Vagrantfile'), join(directory, 'Vagrantfile'));
  const { stdout } = await execa('ruby', [join(root, 'test/helpers/vagrantfile-plan.rb'), join(directory, 'Vagrantfile')], { cwd: directory });
  const [config] = JSON.parse(stdout) as Plan[];
  return config!;
}

async function scratch(t: { teardown: (fn: () => Promise<void>) => void }, prefix: string) {
  const directory = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(directory, { recursive: true, force: true }));
  return directory;
}

// Each stub appends "name<TAB>arg<TAB>arg..." to $STUB_LOG. `ip -o -4 addr show` answers with the
// machine's private address on a NIC named $STUB_IFACE (not eth1: the scripts must look it up).
const STUBS: Record<string, string> = {
  record: 'printf "%s" "$(basename "$0")" >> "$STUB_LOG"; for arg in "$@"; do printf "\\t%s" "$arg" >> "$STUB_LOG"; done; echo >> "$STUB_LOG"',
  ip: `. "$(dirname "$0")/record" "$@"
if [ "$*" = "-o -4 addr show" ]; then
  echo "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever"
  echo "2: eth0    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic eth0\\       valid_lft 86000sec preferred_lft 86000sec"
  echo "3: $STUB_IFACE    inet $STUB_IPV4/24 brd 192.168.56.255 scope global $STUB_IFACE\\       valid_lft forever preferred_lft forever"
fi`,
  // get.k3s.io: an installer that records its environment and arguments, and writes what k3s writes.
  curl: `. "$(dirname "$0")/record" "$@"
case "$*" in
  *https://get.k3s.io*) cat <<'INSTALLER'
printf 'k3s-install\\tK3S_TOKEN=%s\\tK3S_URL=%s\\tINSTALL_K3S_EXEC=%s\\tINSTALL_K3S_CHANNEL=%s' "$K3S_TOKEN" "\${K3S_URL:-}" "\${INSTALL_K3S_EXEC:-}" "$INSTALL_K3S_CHANNEL" >> "$STUB_LOG"
for arg in "$@"; do printf '\\t%s' "$arg" >> "$STUB_LOG"; done; echo >> "$STUB_LOG"
mkdir -p /var/lib/rancher/k3s/agent && echo 'apiVersion: v1' > /var/lib/rancher/k3s/agent/kubeproxy.kubeconfig
INSTALLER
  ;;
  *) exit 22 ;;
esac`,
  // rsync -a --delete --exclude X ... SRC/ DEST/: copies SRC without the excluded names.
  rsync: `. "$(dirname "$0")/record" "$@"
excludes=""; while [ $# -gt 2 ]; do [ "$1" = --exclude ] && { excludes="$excludes --exclude=./$2"; shift; }; shift; done
mkdir -p "$2" && tar -C "$1" $excludes -cf - . | tar -C "$2" -xf -`,
  systemctl: '. "$(dirname "$0")/record" "$@"',
  'apt-get': '. "$(dirname "$0")/record" "$@"',
  npm: '. "$(dirname "$0")/record" "$@"',
  sysctl: '. "$(dirname "$0")/record" "$@"',
};

interface Provisioned { log: string[][]; upper: string; exitCode: number; stderr: string }

/** Runs a machine's provisioners in order, as Vagrant's shell provisioner would (env set, as root). */
async function provision(t: { teardown: (fn: () => Promise<void>) => void }, machine: Machine): Promise<Provisioned> {
  const directory = await scratch(t, `ferry-provision-${machine.name}-`);
  const stubs = join(directory, 'stubs');
  await mkdir(stubs);
  for (const [name, body] of Object.entries(STUBS)) {
    await writeFile(join(stubs, name), `#!/bin/sh\n${body}\n`);
    await chmod(join(stubs, name), 0o755);
  }
  const upper = join(directory, 'upper');
  const overlays = ['/etc', '/opt', '/var/lib'].flatMap((lower) => [
    `mkdir -p ${upper}${lower} ${directory}/work${lower}`,
    `mount -t overlay overlay -o lowerdir=${lower},upperdir=${upper}${lower},workdir=${directory}/work${lower} ${lower}`,
  ]);
  const runs = machine.provisioners.map((provisioner) => {
    const env = Object.entries(provisioner.env ?? {}).map(([key, value]) => `${key}='${value.replaceAll("'", `'\\''`)}'`).join(' ');
    return `env ${env} bash ${join(root, provisioner.path)}`;
  });
  const log = join(directory, 'calls.log');
  await writeFile(log, '');
  const result = await execa('unshare', ['--mount', '--net', '--', 'bash', '-ec', [...overlays, ...runs].join('\n')], {
    reject: false, extendEnv: false,
    env: { PATH: `${stubs}:${SYSTEM_PATH}`, FERRY_SRC: root, STUB_LOG: log, STUB_IFACE: 'enp0s8', STUB_IPV4: machine.networks[0]!.ip, HOME: directory },
  });
  const lines = (await readFile(log, 'utf8')).split('\n').filter(Boolean).map((line) => line.split('\t'));
  return { log: lines, upper, exitCode: result.exitCode ?? -1, stderr: String(result.stderr) };
}

const calls = (provisioned: Provisioned, command: string) => provisioned.log.filter((entry) => entry[0] === command).map((entry) => entry.slice(1).join(' '));

test('the provisioning scripts are valid bash', async (t) => {
  const scripts = (await readdir(join(root, 'deploy/vagrant'))).filter((name) => name.endsWith('.sh'));
  t.true(scripts.length >= 5);
  for (const script of scripts) {
    const result = await execa('bash', ['-n', join(root, 'deploy/vagrant', script)], { reject: false });
    t.is(result.exitCode, 0, `${script}: ${String(result.stderr)}`);
  }
});

test('the Vagrant cluster grants k3s\'s kube-proxy identity exactly ferry\'s ClusterRole', async (t) => {
  const [role, binding] = (await readFile(join(root, 'deploy/vagrant/ferry-rbac.yaml'), 'utf8')).split(/^---$/m).map((text) => parse(text) as Record<string, unknown>);
  const daemonSetRole = (await readFile(join(root, 'deploy/kubernetes/ferry.yaml'), 'utf8')).split(/^---$/m).map((text) => parse(text) as Record<string, unknown>).find((object) => object?.kind === 'ClusterRole');
  t.deepEqual(role, daemonSetRole);
  t.deepEqual((binding as { subjects: unknown }).subjects, [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'system:kube-proxy' }]);
  t.deepEqual((binding as { roleRef: unknown }).roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'ferry' });
});

withRuby('the Vagrantfile makes the k3s token on the host once, private, and gives the same one to every node', async (t) => {
  const directory = await scratch(t, 'ferry-vagrantfile-');
  const first = await plan(directory);
  const tokens = first.machines.flatMap((machine) => machine.provisioners.filter((entry) => entry.name === 'k3s').map((entry) => entry.env.K3S_TOKEN));
  t.is(tokens.length, 3);
  t.regex(tokens[0]!, /^[0-9a-f]{64}$/);
  t.true(tokens.every((token) => token === tokens[0]));
  const file = join(directory, '.vagrant/ferry-k3s-token');
  t.is(await readFile(file, 'utf8'), tokens[0]!);
  t.is((await stat(file)).mode & 0o777, 0o600);
  const again = await plan(directory);
  t.is(again.machines[1]!.provisioners.find((entry) => entry.name === 'k3s')!.env.K3S_TOKEN, tokens[0], 're-provisioning keeps the token');
  const elsewhere = await plan(await scratch(t, 'ferry-vagrantfile-'));
  t.not(elsewhere.machines[0]!.provisioners.find((entry) => entry.name === 'k3s')!.env.K3S_TOKEN, tokens[0], 'a new checkout gets a new token');
  t.deepEqual(first.synced_folders[0]!.options.rsync__exclude, ['node_modules/', 'dist/', '.git/', '.vagrant/']);
});

withRuby('every machine has one private NIC for the address plan; its IPv6 address goes onto the same NIC first', async (t) => {
  const { machines } = await plan(await scratch(t, 'ferry-vagrantfile-'));
  t.deepEqual(machines.map((machine) => [machine.name, machine.networks.map((network) => `${network.type} ${network.ip}`)]), [
    ['node-a', ['private_network 192.168.56.11']], ['node-b', ['private_network 192.168.56.12']], ['node-c', ['private_network 192.168.56.13']],
    ['ext-1', ['private_network 192.168.56.100']], ['ext-2', ['private_network 192.168.56.101']],
  ]);
  for (const machine of machines) {
    const [first] = machine.provisioners;
    t.deepEqual(first, { name: 'network', type: 'shell', path: 'deploy/vagrant/network.sh', env: { NODE_IPV4: machine.networks[0]!.ip, NODE_IPV6: `fd00:56::${machine.networks[0]!.ip.split('.').at(-1)}` } }, machine.name);
  }
  t.deepEqual(machines.map((machine) => machine.provisioners.map((entry) => entry.name).join(',')), ['network,k3s,ferry', 'network,k3s,ferry', 'network,k3s,ferry', 'network,client', 'network,client']);
});

withRuby('kernel: provisioning the server installs k3s without kube-proxy, dual-stack on the looked-up NIC, with the host\'s token and ferry\'s RBAC', async (t) => {
  const { machines } = await plan(await scratch(t, 'ferry-vagrantfile-'));
  const server = machines.find((machine) => machine.name === 'node-a')!;
  const result = await provision(t, server);
  t.is(result.exitCode, 0, result.stderr);
  const token = server.provisioners.find((entry) => entry.name === 'k3s')!.env.K3S_TOKEN;
  t.deepEqual(calls(result, 'k3s-install'), [[
    `K3S_TOKEN=${token}`, 'K3S_URL=', 'INSTALL_K3S_EXEC=server', 'INSTALL_K3S_CHANNEL=v1.33',
    '--node-ip', '192.168.56.11,fd00:56::11', '--flannel-iface', 'enp0s8', '--disable-kube-proxy', '--disable', 'traefik', '--disable', 'servicelb',
    '--flannel-backend', 'host-gw', '--cluster-cidr', '10.244.0.0/16,fd00:244::/56', '--service-cidr', '10.96.0.0/16,fd00:96::/112', '--write-kubeconfig-mode', '644',
  ].join(' ')]);
  t.is(await readFile(join(result.upper, 'var/lib/rancher/k3s/server/manifests/ferry-rbac.yaml'), 'utf8'), await readFile(join(root, 'deploy/vagrant/ferry-rbac.yaml'), 'utf8'));
});

withRuby('kernel: provisioning an agent joins the server with the same token and needs nothing from another VM', async (t) => {
  const { machines } = await plan(await scratch(t, 'ferry-vagrantfile-'));
  const agent = machines.find((machine) => machine.name === 'node-b')!;
  const result = await provision(t, agent);
  t.is(result.exitCode, 0, result.stderr);
  const token = agent.provisioners.find((entry) => entry.name === 'k3s')!.env.K3S_TOKEN;
  t.deepEqual(calls(result, 'k3s-install'), [`K3S_TOKEN=${token} K3S_URL=https://192.168.56.11:6443 INSTALL_K3S_EXEC= INSTALL_K3S_CHANNEL=v1.33 agent --node-ip 192.168.56.12,fd00:56::12 --flannel-iface enp0s8`]);
  t.false(existsSync(join(result.upper, 'var/lib/rancher/k3s/server')), 'no server manifests on an agent');
});

withRuby('kernel: provisioning a node puts its IPv6 address on the IPv4 NIC at every boot and runs ferry from k3s\'s kube-proxy kubeconfig', async (t) => {
  const { machines } = await plan(await scratch(t, 'ferry-vagrantfile-'));
  const result = await provision(t, machines.find((machine) => machine.name === 'node-c')!);
  t.is(result.exitCode, 0, result.stderr);
  const unit = await readFile(join(result.upper, 'etc/systemd/system/ferry-e2e-ipv6.service'), 'utf8');
  t.regex(unit, /^ExecStart=\/usr\/sbin\/ip -6 addr replace fd00:56::13\/64 dev enp0s8 nodad$/m);
  t.regex(unit, /^Before=k3s\.service k3s-agent\.service$/m);
  t.is(await readlink(join(result.upper, 'etc/ferry/kubeconfig')), '/var/lib/rancher/k3s/agent/kubeproxy.kubeconfig');
  t.is(await readFile(join(result.upper, 'etc/ferry/ferry.env'), 'utf8'), 'FERRY_NODE=node-c\nFERRY_BACKEND=nftables\n');
  t.is(await readFile(join(result.upper, 'etc/systemd/system/ferry.service'), 'utf8'), await readFile(join(root, 'deploy/systemd/ferry.service'), 'utf8'));
  t.is(await readFile(join(result.upper, 'etc/ferry/kube-proxy.yaml'), 'utf8'), await readFile(join(root, 'deploy/systemd/kube-proxy.yaml'), 'utf8'));
  t.true(existsSync(join(result.upper, 'opt/ferry/scripts/install.sh')), 'the repository copied to /opt/ferry');
  t.false(existsSync(join(result.upper, 'opt/ferry/node_modules')));
  t.deepEqual(calls(result, 'rsync'), [`-a --delete --exclude node_modules --exclude dist --exclude .git ${root}/ /opt/ferry/`]);
  t.deepEqual(calls(result, 'npm'), ['ci --no-audit --no-fund'], 'scripts/install.sh built ferry');
  t.deepEqual(calls(result, 'systemctl'), [
    'daemon-reload', 'enable ferry-e2e-ipv6.service', 'restart ferry-e2e-ipv6.service', 'daemon-reload', 'enable ferry.service', 'restart ferry.service',
  ]);
  t.false(existsSync('/etc/ferry/ferry.env') && (await readFile('/etc/ferry/ferry.env', 'utf8')).includes('node-c'), 'nothing reached this machine\'s /etc');
});

withRuby('kernel: provisioning an external client routes the Service ranges through node-a, per family', async (t) => {
  const { machines } = await plan(await scratch(t, 'ferry-vagrantfile-'));
  const result = await provision(t, machines.find((machine) => machine.name === 'ext-2')!);
  t.is(result.exitCode, 0, result.stderr);
  t.deepEqual(calls(result, 'ip').filter((line) => line.includes('route')), [
    'route replace 10.96.0.0/16 via 192.168.56.11', 'route replace 203.0.113.0/24 via 192.168.56.11', 'route replace 198.51.100.0/24 via 192.168.56.11',
    '-6 route replace fd00:96::/112 via fd00:56::11', '-6 route replace fd00:203::/64 via fd00:56::11', '-6 route replace fd00:198::/64 via fd00:56::11',
  ]);
  t.regex(await readFile(join(result.upper, 'etc/systemd/system/ferry-e2e-ipv6.service'), 'utf8'), /addr replace fd00:56::101\/64 dev enp0s8 nodad/);
});
