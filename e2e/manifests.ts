// Builders for the objects scenarios apply, shared by every ClusterDriver.
import type { EndpointPod, PodHost } from './driver.js';

/** EndpointSlices (one per family) that make the named pods endpoints of a Service, as the controller would. */
export function endpointSliceObjects(pods: ReadonlyMap<string, PodHost>, service: string, members: EndpointPod[],
  ports: { name?: string; port: number; protocol?: string }[], namespace = 'default'): object[] {
  const endpoints = members.map((member) => (typeof member === 'string' ? { name: member } : member));
  return (['ipv4', 'ipv6'] as const).map((family) => ({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: `${service}-${family}`, namespace, labels: { 'kubernetes.io/service-name': service } },
    addressType: family === 'ipv4' ? 'IPv4' : 'IPv6',
    endpoints: endpoints.map((member) => {
      const pod = pods.get(member.name);
      if (!pod) throw new Error(`endpoint ${member.name} of ${service}: no such pod`);
      const ready = member.ready ?? true;
      return {
        addresses: [pod[family]], nodeName: pod.node, targetRef: { kind: 'Pod', name: pod.name, namespace },
        conditions: { ready, serving: member.serving ?? ready, terminating: member.terminating ?? false },
        ...(member.zones ? { hints: { forZones: member.zones.map((zone) => ({ name: zone })) } } : {}),
      };
    }),
    ports: ports.map((port) => ({ name: port.name ?? '', port: port.port, protocol: port.protocol ?? 'TCP' })),
  }));
}

/** Pod objects for pods of the cluster, Ready, with the given labels and one named container port. */
export function podObjects(pods: ReadonlyMap<string, PodHost>, names: string[], labels: Record<string, string>, port: { name: string; containerPort: number }, namespace = 'default'): object[] {
  return names.map((name) => {
    const pod = pods.get(name);
    if (!pod) throw new Error(`no pod ${name}`);
    return {
      apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, labels },
      spec: { nodeName: pod.node, containers: [{ name: 'main', image: 'echo', ports: [{ ...port, protocol: 'TCP' }] }] },
      status: { phase: 'Running', podIP: pod.ipv4, podIPs: [{ ip: pod.ipv4 }, { ip: pod.ipv6 }], conditions: [{ type: 'Ready', status: 'True' }] },
    };
  });
}
