import { readFile } from 'node:fs/promises';
import test from 'ava';
import { parseKubeProxyConfiguration } from '../controlplane/config/kube-proxy-config.js';
import { parseManifest } from '../controlplane/sources/manifests.js';

// The image cannot be built and the DaemonSet cannot run here: these checks pin down what they say.
type Obj = { kind: string; metadata: { name: string }; [key: string]: unknown };
const objects = async () => parseManifest(await readFile('deploy/kubernetes/ferry.yaml', 'utf8'), 'ferry.yaml') as Obj[];
const find = async (kind: string) => (await objects()).find((object) => object.kind === kind)!;

test('the DaemonSet runs the agent on every node in the host network with what kube-proxy has', async (t) => {
  interface Container {
    args: string[];
    livenessProbe: { httpGet: { path: string } };
    securityContext: { capabilities: { add: string[] } };
    volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
  }
  const daemonSet = await find('DaemonSet') as unknown as { spec: { template: { spec: { hostNetwork: boolean; tolerations: object[]; priorityClassName: string; containers: Container[] } } } };
  const pod = daemonSet.spec.template.spec;
  t.true(pod.hostNetwork);
  t.deepEqual(pod.tolerations, [{ operator: 'Exists' }]);
  t.is(pod.priorityClassName, 'system-node-critical');
  const container = pod.containers[0]!;
  t.deepEqual(container.args.slice(0, 1), ['agent']);
  t.is(container.livenessProbe.httpGet.path, '/livez');
  t.true(['NET_ADMIN', 'NET_RAW'].every((capability) => container.securityContext.capabilities.add.includes(capability)));
  const mounts = Object.fromEntries(container.volumeMounts.map((mount) => [mount.name, mount]));
  t.is(mounts['xtables-lock']?.mountPath, '/run/xtables.lock');
  t.true(mounts['lib-modules']?.readOnly);
});

test('the ClusterRole grants exactly get, list and watch on what the informers follow', async (t) => {
  const role = await find('ClusterRole') as unknown as { rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[] };
  const granted = role.rules.flatMap((rule) => rule.resources.map((resource) => `${rule.apiGroups[0] || 'core'}/${resource}:${rule.verbs.join(',')}`)).sort();
  t.deepEqual(granted, ['core/nodes:get,list,watch', 'core/services:get,list,watch', 'discovery.k8s.io/endpointslices:get,list,watch', 'networking.k8s.io/servicecidrs:get,list,watch']);
});

test('the shipped KubeProxyConfigurations parse without warnings', async (t) => {
  const configMap = await find('ConfigMap') as unknown as { data: Record<string, string> };
  t.deepEqual(parseKubeProxyConfiguration(configMap.data['kube-proxy.yaml']!).warnings, []);
  t.deepEqual(parseKubeProxyConfiguration(await readFile('deploy/systemd/kube-proxy.yaml', 'utf8')).warnings, []);
});

test('the systemd unit runs the agent and stops it with SIGTERM, which keeps the rules', async (t) => {
  const unit = await readFile('deploy/systemd/ferry.service', 'utf8');
  t.regex(unit, /^ExecStart=.*ferry\.js agent --node \$\{FERRY_NODE\} --backend \$\{FERRY_BACKEND\}/m);
  t.regex(unit, /^KillSignal=SIGTERM$/m);
  t.regex(unit, /^Restart=always$/m);
});

test('the image installs the kernel tools ferry drives', async (t) => {
  const dockerfile = await readFile('Dockerfile', 'utf8');
  for (const tool of ['iptables', 'nftables', 'conntrack', 'util-linux']) t.regex(dockerfile, new RegExp(`\\b${tool}\\b`));
  t.regex(dockerfile, /^FROM node:20-bookworm-slim$/m);
});
