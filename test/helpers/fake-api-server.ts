// The fake API as a process of its own, so that it can listen inside a network namespace:
//   node dist/test/helpers/fake-api-server.js HOST PORT OBJECTS.json
// OBJECTS.json is a list of API objects; "listening" on stdout says it is ready.
import { readFile } from 'node:fs/promises';
import { FakeApi } from './fake-api.js';

const PATHS: Record<string, { kind: string; apiVersion: string }> = {
  '/api/v1/services': { kind: 'Service', apiVersion: 'v1' },
  '/apis/discovery.k8s.io/v1/endpointslices': { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1' },
  '/api/v1/nodes': { kind: 'Node', apiVersion: 'v1' },
};

const [host, port, file] = process.argv.slice(2);
const api = new FakeApi(PATHS);
await api.start(host, Number(port));
for (const object of JSON.parse(await readFile(file!, 'utf8')) as { kind: string; metadata: { name: string } }[]) {
  const path = Object.entries(PATHS).find(([, entry]) => entry.kind === object.kind)![0];
  api.put(path, object);
}
process.stdout.write('listening\n');
process.on('SIGTERM', () => void api.stop().then(() => process.exit(0)));
