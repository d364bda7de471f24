// A small universe of objects for change-tracking tests: views drawn from it share, change, move and
// drop Services and slices from one draw to the next.
import { nodeObject, serviceObject, sliceObject } from './objects.js';

export const poolNodes = [nodeObject('node-a'), nodeObject('node-b')];

export const changePool = [0, 1, 2, 3].flatMap((index) => [
  serviceObject({ name: `svc-${index}`, clusterIPs: [`10.96.0.${20 + index}`], ports: [{ name: 'http', port: 80 }, { name: 'dns', port: 53, protocol: 'UDP' }] }),
  serviceObject({ name: `svc-${index}`, clusterIPs: [`10.96.0.${20 + index}`, `fd00:96::${20 + index}`], type: 'NodePort', externalTrafficPolicy: 'Local', sessionAffinity: 'ClientIP', ports: [{ name: 'http', port: 80, nodePort: 30080 + index }] }),
  // A cluster IP and port another Service holds too (hand-written manifests may; the API never does): the
  // first by name keeps the port, and the cluster-ips set keeps the address while either holds it.
  serviceObject({ name: `svc-${index}`, clusterIPs: ['10.96.0.99'] }),
  // An external IP and node port several Services claim (the API allows the first): the first by name keeps them.
  serviceObject({ name: `svc-${index}`, clusterIPs: [`10.96.0.${20 + index}`], type: 'NodePort', externalIPs: ['203.0.113.50'], ports: [{ name: 'http', port: 80, nodePort: 30100 }] }),
  // An external IP that is another Service's cluster IP: the cluster IP keeps it.
  serviceObject({ name: `svc-${index}`, clusterIPs: [`10.96.0.${40 + index}`], externalIPs: ['10.96.0.20'] }),
  sliceObject(`svc-${index}`, [{ ip: `10.244.1.${index + 10}`, node: 'node-a' }]),
  sliceObject(`svc-${index}`, [{ ip: `10.244.1.${index + 10}`, node: 'node-a' }, { ip: `10.244.2.${index + 10}`, node: 'node-b', ready: index % 2 === 0 }]),
  sliceObject(`svc-${index}`, [{ ip: `fd00:244:0:1::${index + 10}`, node: 'node-a' }]),
  // The same slice name labelled for another Service: a slice moving between Services.
  sliceObject(`svc-${(index + 1) % 4}`, [{ ip: `10.244.3.${index + 10}`, node: 'node-b' }], { name: `svc-${index}-abcde` }),
]);

/** The nodes and a draw from the pool, two objects of one kind and name kept as the last (one object changing, as an informer sees it). */
export function poolView(objects: typeof changePool): unknown[] {
  const key = (object: (typeof changePool)[number]) => `${object.kind}/${object.metadata.namespace}/${object.metadata.name}`;
  return [...poolNodes, ...new Map(objects.map((object) => [key(object), object])).values()];
}

