import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { parse } from 'yaml';
import { parseKubeProxyConfiguration } from '../controlplane/config/kube-proxy-config.js';
import { packageRoot } from '../controlplane/package-root.js';
import { loadKubeConfig } from '../controlplane/sources/kubernetes.js';
import { parseManifest } from '../controlplane/sources/manifests.js';
import { BACKEND_NAMES } from '../dataplane/backend-names.js';
import { buildMapWriter, buildPacketsObject, buildSocketsObject } from '../dataplane/ebpf/build.js';
import { buildNftDigest } from '../dataplane/nftables/digest.js';
import { bpfWorkspace } from './helpers/bpf-workspace.js';

// The image cannot be built and the DaemonSet cannot run here: these checks pin down what the files say,
// and run what can run (kubeadm's config files, the container's read-only root file system) without them.
const root = packageRoot();
type Obj = { kind: string; metadata: { name: string }; [key: string]: unknown };
interface Mount { name: string; mountPath: string; readOnly?: boolean }
interface Container {
  name: string;
  image: string;
  args: string[];
  env?: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  livenessProbe?: { httpGet: { path: string; port: number; host: string } };
  readinessProbe?: { httpGet: { path: string; port: number; host: string } };
  securityContext: { runAsUser: number; allowPrivilegeEscalation: boolean; readOnlyRootFilesystem: boolean; capabilities: { drop: string[]; add: string[] } };
  volumeMounts: Mount[];
}
interface Volume { name: string; configMap?: { name: string }; hostPath?: { path: string }; emptyDir?: object }
interface PodSpec {
  hostNetwork: boolean; tolerations: object[]; priorityClassName: string; serviceAccountName: string; nodeSelector: Record<string, string>;
  automountServiceAccountToken?: boolean; initContainers: Container[]; containers: Container[]; volumes: Volume[];
}

const objects = async () => parseManifest(await readFile(join(root, 'deploy/kubernetes/ferry.yaml'), 'utf8'), 'ferry.yaml') as Obj[];
const find = async (kind: string) => (await objects()).find((object) => object.kind === kind)!;
const pod = async () => (await find('DaemonSet') as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
const fixture = (name: string) => readFile(join(root, 'test/fixtures', name), 'utf8');

test('the DaemonSet runs on every Linux node in the host network, as kube-proxy does', async (t) => {
  const spec = await pod();
  t.true(spec.hostNetwork);
  t.deepEqual(spec.tolerations, [{ operator: 'Exists' }]);
  t.is(spec.priorityClassName, 'system-node-critical');
  t.deepEqual(spec.nodeSelector, { 'kubernetes.io/os': 'linux' });
});

test('the agent runs from kubeadm\'s kube-proxy ConfigMap, mounted where kube-proxy\'s DaemonSet mounts it, with kube-proxy\'s flags', async (t) => {
  const spec = await pod();
  const [agent] = spec.containers;
  t.deepEqual(agent!.args, ['agent', '--config=/var/lib/kube-proxy/config.conf', '--hostname-override=$(NODE_NAME)']);
  t.deepEqual(agent!.env, [{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }]);
  const volume = spec.volumes.find((entry) => entry.configMap)!;
  t.deepEqual(volume.configMap, { name: 'kube-proxy' });
  t.deepEqual(agent!.volumeMounts.find((mount) => mount.name === volume.name), { name: volume.name, mountPath: '/var/lib/kube-proxy', readOnly: true });
  t.false((await objects()).some((object) => object.kind === 'ConfigMap'), 'ferry ships no ConfigMap of its own');
});

test('kubeadm\'s config.conf parses without warnings and names the kubeconfig inside the ConfigMap\'s mount', async (t) => {
  const { config, warnings } = parseKubeProxyConfiguration(await fixture('kubeadm-config.conf'), 'config.conf');
  t.deepEqual(warnings, []);
  t.is(config.kubeconfig, '/var/lib/kube-proxy/kubeconfig.conf');
  t.deepEqual(config.clusterCIDRs, ['10.244.0.0/16', 'fd00:244::/56']);
  // The probes ask the port of healthzBindAddress ("" in kubeadm's file: the default).
  const [agent] = (await pod()).containers;
  t.is(`0.0.0.0:${agent!.livenessProbe!.httpGet.port}`, config.healthzBindAddress);
  t.is(`0.0.0.0:${agent!.readinessProbe!.httpGet.port}`, config.healthzBindAddress);
});

test('kubeadm\'s kubeconfig.conf reaches the API at its real address with the pod\'s own service-account token', async (t) => {
  const kubeconfig = parse(await fixture('kubeadm-kubeconfig.conf')) as {
    clusters: { cluster: { server: string; 'certificate-authority': string } }[]; users: { user: { tokenFile: string } }[];
  };
  const serviceAccount = '/var/run/secrets/kubernetes.io/serviceaccount';
  t.is(kubeconfig.clusters[0]!.cluster['certificate-authority'], `${serviceAccount}/ca.crt`);
  t.is(kubeconfig.users[0]!.user.tokenFile, `${serviceAccount}/token`);
  t.regex(kubeconfig.clusters[0]!.cluster.server, /^https:\/\/192\.168\.56\.11:6443$/, 'the control-plane endpoint, not a Service cluster IP');
  const spec = await pod();
  t.is(spec.serviceAccountName, 'ferry');
  t.not(spec.automountServiceAccountToken, false, 'the token kubeconfig.conf names is mounted');
});

// client-node reads a kubeconfig user's `token-file`, but kubeconfig files (and kubeadm's) spell it
// `tokenFile` (client-go's clientcmd/api/v1): without loadKubeConfig's own reading of it ferry would
// list as system:anonymous.
test('kubeadm\'s kubeconfig.conf makes the agent send the pod\'s token', async (t) => {
  const directory = await mkdtemp(join(tmpdir(), 'ferry-kubeconfig-'));
  t.teardown(() => rm(directory, { recursive: true, force: true }));
  await writeFile(join(directory, 'token'), 'the-pods-token');
  await writeFile(join(directory, 'ca.crt'), '');
  const path = join(directory, 'kubeconfig.conf');
  await writeFile(path, (await fixture('kubeadm-kubeconfig.conf')).replaceAll('/var/run/secrets/kubernetes.io/serviceaccount', directory));
  const options: { headers: Record<string, string> } = { headers: {} };
  await loadKubeConfig(path).applyToHTTPSOptions(options);
  t.is(options.headers.Authorization, 'Bearer the-pods-token');
});

test('an init container removes kube-proxy\'s rules with the same image, mounts and privileges as the agent', async (t) => {
  const spec = await pod();
  t.is(spec.initContainers.length, 1);
  const [cleanup] = spec.initContainers;
  const [agent] = spec.containers;
  t.deepEqual(cleanup!.args, ['cleanup', '--kube-proxy']);
  t.is(cleanup!.image, agent!.image);
  t.deepEqual(cleanup!.volumeMounts, agent!.volumeMounts);
  t.deepEqual(cleanup!.securityContext, agent!.securityContext);
});

test('liveness asks /livez and readiness /healthz, on the node\'s loopback', async (t) => {
  const [agent] = (await pod()).containers;
  t.deepEqual(agent!.livenessProbe!.httpGet, { path: '/livez', port: 10256, host: '127.0.0.1' });
  t.deepEqual(agent!.readinessProbe!.httpGet, { path: '/healthz', port: 10256, host: '127.0.0.1' });
});

test('both containers run as root with only NET_ADMIN, NET_RAW and SYS_ADMIN and a read-only root file system', async (t) => {
  const spec = await pod();
  for (const container of [...spec.initContainers, ...spec.containers]) {
    t.deepEqual(container.securityContext, {
      runAsUser: 0, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN'] },
    }, container.name);
  }
});

test('the only writable mounts are the xtables lock, the iptables links, a small /tmp and the bpffs, where the entry point and ferry\'s PATH expect them', async (t) => {
  const spec = await pod();
  const [agent] = spec.containers;
  const volumes = new Map(spec.volumes.map((volume) => [volume.name, volume]));
  const writable = agent!.volumeMounts.filter((mount) => !mount.readOnly).map((mount) => [mount.mountPath, volumes.get(mount.name)]);
  t.deepEqual(writable, [
    ['/run/xtables.lock', { name: 'xtables-lock', hostPath: { path: '/run/xtables.lock', type: 'FileOrCreate' } }],
    ['/usr/local/sbin', { name: 'iptables-links', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } }],
    ['/tmp', { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } }],
    ['/sys/fs/bpf', { name: 'bpffs', hostPath: { path: '/sys/fs/bpf', type: 'Directory' } }],
  ]);
  t.deepEqual(agent!.volumeMounts.find((mount) => mount.name === 'host-cgroup'), { name: 'host-cgroup', mountPath: '/sys/fs/cgroup', readOnly: true });
  t.regex(await readFile(join(root, 'deploy/image/entrypoint.sh'), 'utf8'), /dir=\$\{FERRY_IPTABLES_DIR:-\/usr\/local\/sbin\}/);
  // ferry runs its commands with a fixed PATH (dataplane/runner.ts): the links must come first on it.
  t.regex(await readFile(join(root, 'dataplane/runner.ts'), 'utf8'), /const SYSTEM_PATH = '\/usr\/local\/sbin:/);
  t.deepEqual(agent!.volumeMounts.find((mount) => mount.name === 'lib-modules'), { name: 'lib-modules', mountPath: '/lib/modules', readOnly: true });
});

test('the ClusterRole grants exactly get, list and watch on what the informers follow', async (t) => {
  const role = await find('ClusterRole') as unknown as { rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[] };
  const granted = role.rules.flatMap((rule) => rule.resources.map((resource) => `${rule.apiGroups[0] || 'core'}/${resource}:${rule.verbs.join(',')}`)).sort();
  t.deepEqual(granted, ['core/nodes:get,list,watch', 'core/services:get,list,watch', 'discovery.k8s.io/endpointslices:get,list,watch', 'networking.k8s.io/servicecidrs:get,list,watch']);
});

// The container's file system, rebuilt in a mount namespace of this test only: this machine's root file
// system bound read-only, sysfs read-only as runtimes mount it, and on it the DaemonSet's volumes as the
// kubelet mounts them (the kube-proxy ConfigMap from the kubeadm fixtures, emptyDirs as tmpfs, host
// paths bound where this machine has them). The eBPF volumes are bound to a cgroup and a bpffs this
// test made, never the machine's own, and the objects a node would compile come prebuilt (as the image
// has them). Then ferry runs through the image's entry point, chrooted there, in a network namespace
// of its own, with no capabilities but the DaemonSet's.
test('kernel: with the DaemonSet\'s mounts and capabilities on a read-only root, ferry applies, diffs and cleans up every backend with kubeadm\'s config.conf', async (t) => {
  const scratch = await mkdtemp(join(tmpdir(), 'ferry-rootfs-'));
  t.teardown(() => rm(scratch, { recursive: true, force: true }));
  const configMap = join(scratch, 'configmap');
  await mkdir(configMap);
  await copyFile(join(root, 'test/fixtures/kubeadm-config.conf'), join(configMap, 'config.conf'));
  await copyFile(join(root, 'test/fixtures/kubeadm-kubeconfig.conf'), join(configMap, 'kubeconfig.conf'));
  const cache = join(scratch, 'cache');
  for (const build of [buildSocketsObject, buildPacketsObject, buildMapWriter, buildNftDigest]) await build({ cacheDir: cache });
  const place = await bpfWorkspace(t);
  await mkdir(place.pinDir);
  // The host paths the kubelet would bind, here the test's own places (and the prebuilt objects).
  const hostPaths: Record<string, string> = { '/sys/fs/cgroup': place.cgroup, '/sys/fs/bpf': place.pinDir };
  const spec = await pod();
  const volumes = new Map(spec.volumes.map((volume) => [volume.name, volume]));
  const rootfs = join(scratch, 'rootfs');
  await mkdir(rootfs);
  const lines = [`mount --bind / ${rootfs}`, `mount -o remount,bind,ro ${rootfs}`, `mount -t proc proc ${rootfs}/proc`, `mount -t sysfs -o ro sysfs ${rootfs}/sys`, `mount --rbind /dev ${rootfs}/dev`];
  const skipped: string[] = [];
  const mounts = [...spec.containers[0]!.volumeMounts, { name: 'prebuilt', mountPath: '/var/cache/ferry', readOnly: true }];
  for (const mount of mounts) {
    const volume = mount.name === 'prebuilt' ? { name: 'prebuilt', hostPath: { path: cache } } : volumes.get(mount.name)!;
    const target = `${rootfs}${mount.mountPath}`;
    const hostPath = volume.hostPath && (hostPaths[volume.hostPath.path] ?? volume.hostPath.path);
    if (hostPath && !existsSync(hostPath)) {
      skipped.push(mount.mountPath);
      continue;
    }
    if (!mount.mountPath.startsWith('/sys/') && !existsSync(mount.mountPath)) {
      if (!existsSync(dirname(mount.mountPath))) throw new Error(`no mount point for ${mount.mountPath}`);
      // A mount point the root file system lacks: the runtime would create it; here a read-only tmpfs on its parent holds it.
      lines.push(`mount -t tmpfs mountpoints ${dirname(target)}`, `mkdir ${target}`, `mount -o remount,ro ${dirname(target)}`);
    }
    if (volume.configMap) lines.push(`mount --bind ${configMap} ${target}`);
    else if (volume.emptyDir) lines.push(`mount -t tmpfs ${mount.name} ${target}`);
    else if (hostPath) lines.push(`mount --bind ${hostPath} ${target}`);
    else throw new Error(`the test does not know volume ${mount.name}`);
    if (mount.readOnly) lines.push(`mount -o remount,bind,ro ${target}`);
  }
  // The image has ferry at FERRY_HOME, here this checkout: where an emptyDir (/tmp) hides it, it is bound back.
  if (mounts.some((mount) => volumes.get(mount.name)?.emptyDir && root.startsWith(`${mount.mountPath}/`))) {
    lines.push(`mkdir -p ${rootfs}${root}`, `mount --bind ${root} ${rootfs}${root}`, `mount -o remount,bind,ro ${rootfs}${root}`);
  }
  const capabilities = spec.containers[0]!.securityContext.capabilities.add.map((name) => `+${name.toLowerCase()}`).join(',');
  const entrypoint = `setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all,${capabilities} -- env FERRY_HOME=${root} ${root}/deploy/image/entrypoint.sh`;
  const ferry = (args: string) => `${entrypoint} ${args} --node node-a -f ${root}/examples/cluster.yaml --config /var/lib/kube-proxy/config.conf`;
  const inContainer = [
    'if touch /ferry-write-probe-$$ 2>/dev/null; then rm -f /ferry-write-probe-$$; echo "the root file system is writable" >&2; exit 1; fi',
    ...BACKEND_NAMES.flatMap((backend) => [ferry(`apply --backend ${backend}`), ferry(`diff --backend ${backend}`), `${entrypoint} cleanup --backend ${backend}`]),
    'nft list ruleset | grep -c "table ip ferry" || true',
  ].join('\n');
  lines.push(`chroot ${rootfs} /bin/sh -ec '${inContainer.replaceAll("'", `'\\''`)}'`);
  const result = await execa('unshare', ['--net', '--mount', '--', 'sh', '-ec', lines.join('\n')], {
    reject: false, env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' }, extendEnv: false,
  });
  t.is(result.exitCode, 0, `${String(result.stderr)}\n${String(result.stdout)}`);
  t.regex(String(result.stdout), /ferry: applied nftables rules for node-a/);
  t.regex(String(result.stdout), /ferry: applied iptables rules for node-a/);
  t.regex(String(result.stdout), /ferry: applied ebpf rules for node-a/);
  t.is(String(result.stdout).trim().split('\n').at(-1), '0', 'cleanup left no ferry table');
  t.deepEqual(await readdir(place.pinDir), [], 'cleanup unpinned everything');
  t.log(skipped.length ? `not on this machine, not mounted: ${skipped.join(', ')}` : 'every volume mounted');
});

// The init container runs at every start of the pod, also when ferry restarts on a node it already
// serves: it must leave ferry's own rules alone, or every restart drops new connections until the
// first sync.
test('kernel: the init container\'s command removes kube-proxy\'s rules and leaves ferry\'s', async (t) => {
  const [cleanup] = (await pod()).initContainers;
  const ferry = `${process.execPath} ${root}/bin/ferry.js`;
  const result = await execa('unshare', ['--net', '--', 'sh', '-ec', [
    `${ferry} apply --node node-a -f ${root}/examples/cluster.yaml --backend nftables >/dev/null`,
    'iptables-nft -t nat -N KUBE-SERVICES',
    'nft add table ip kube-proxy',
    `${ferry} ${cleanup!.args.join(' ')} >&2`,
    'echo "$(nft list tables | tr "\\n" " ")|$(iptables-nft-save -t nat | grep -c "^:KUBE-SERVICES" || true)"',
  ].join('\n')], { reject: false, cwd: root, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } }); // not node_modules/.bin's nft
  t.is(result.exitCode, 0, String(result.stderr));
  const [tables, kubeServices] = String(result.stdout).trim().split('|');
  t.false(tables!.includes('kube-proxy'), tables);
  t.is(kubeServices, '0');
  t.true(tables!.includes('table ip ferry'), `ferry's table stays: ${tables}`);
});
