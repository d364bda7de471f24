// An HTTP server that speaks the Kubernetes list/watch protocol with real API JSON, for testing the
// informer source where no API server can run: lists with resourceVersion, chunked watch streams of
// ADDED/MODIFIED/DELETED/BOOKMARK events, 410 Gone, dropped connections and outages.
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

interface Collection {
  kind: string;
  apiVersion: string;
  objects: Map<string, Record<string, unknown>>;
  watchers: Set<ServerResponse>;
  /** Every event with its resourceVersion: a watch from version N gets the events after N, as the API replays them. */
  history: { version: number; event: object }[];
}

type Obj = { metadata: { name: string; namespace?: string; resourceVersion?: string } } & Record<string, unknown>;

export class FakeApi {
  private server!: Server;
  private resourceVersion = 100;
  readonly collections = new Map<string, Collection>();
  /** Every request: path, whether it watched, and from which resourceVersion. */
  readonly requests: { path: string; watch: boolean; resourceVersion: string | null; labelSelector: string | null }[] = [];
  /** While true, every request fails with 503 (the API is away). */
  unavailable = false;

  constructor(paths: Record<string, { kind: string; apiVersion: string }>) {
    for (const [path, { kind, apiVersion }] of Object.entries(paths)) this.collections.set(path, { kind, apiVersion, objects: new Map(), watchers: new Set(), history: [] });
  }

  /** Listens on host:port (port 0: any free port). */
  async start(host = '127.0.0.1', port = 0): Promise<void> {
    this.server = createServer((request, response) => {
      const url = new URL(request.url ?? '/', 'http://fake');
      const watch = url.searchParams.get('watch') === 'true';
      this.requests.push({ path: url.pathname, watch, resourceVersion: url.searchParams.get('resourceVersion'), labelSelector: url.searchParams.get('labelSelector') });
      const collection = this.collections.get(url.pathname);
      if (this.unavailable) return void response.writeHead(503).end('{"kind":"Status","code":503}');
      if (!collection) return void response.writeHead(404, { 'Content-Type': 'application/json' }).end('{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}');
      const selector = url.searchParams.get('fieldSelector');
      const matches = (object: Obj) => !selector || selector === `metadata.name=${object.metadata.name}`;
      if (!watch) {
        response.writeHead(200, { 'Content-Type': 'application/json' });
        return void response.end(JSON.stringify({
          kind: `${collection.kind}List`, apiVersion: collection.apiVersion, metadata: { resourceVersion: String(this.resourceVersion) },
          items: [...collection.objects.values()].filter((object) => matches(object as Obj)),
        }));
      }
      response.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
      response.flushHeaders();
      const since = Number(url.searchParams.get('resourceVersion') ?? this.resourceVersion);
      for (const { version, event } of collection.history) if (version > since) response.write(`${JSON.stringify(event)}\n`);
      collection.watchers.add(response);
      response.on('close', () => collection.watchers.delete(response));
    });
    await new Promise<void>((resolve) => this.server.listen(port, host, resolve));
  }

  /** The server's address, http://HOST:PORT. */
  get url(): string {
    const { address, port } = this.server.address() as AddressInfo;
    return `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  }

  /** A kubeconfig pointing at this server, as `--kubeconfig` would load one. */
  kubeConfig(): KubeConfig {
    const config = new KubeConfig();
    const server = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    config.loadFromOptions({ clusters: [{ name: 'fake', server, skipTLSVerify: true }], users: [{ name: 'user' }], contexts: [{ name: 'fake', cluster: 'fake', user: 'user' }], currentContext: 'fake' });
    return config;
  }

  /** Stores an object (a new resourceVersion) and tells every watcher. */
  put(path: string, object: Obj, event: 'ADDED' | 'MODIFIED' = 'ADDED'): void {
    const collection = this.collections.get(path)!;
    const stored = { apiVersion: collection.apiVersion, kind: collection.kind, ...object, metadata: { ...object.metadata, resourceVersion: String(++this.resourceVersion) } };
    collection.objects.set(key(object), stored);
    this.send(collection, { type: event, object: stored });
  }

  remove(path: string, object: Obj, options: { silently?: boolean } = {}): void {
    const collection = this.collections.get(path)!;
    const stored = collection.objects.get(key(object));
    collection.objects.delete(key(object));
    this.resourceVersion += 1;
    if (!options.silently && stored) this.send(collection, { type: 'DELETED', object: { ...stored, metadata: { ...(stored.metadata as object), resourceVersion: String(this.resourceVersion) } } });
  }

  bookmark(path: string): void {
    const collection = this.collections.get(path)!;
    this.send(collection, { type: 'BOOKMARK', object: { kind: collection.kind, apiVersion: collection.apiVersion, metadata: { resourceVersion: String(++this.resourceVersion) } } });
  }

  /** The watch history is gone: an ERROR event with a 410 Status, then the stream ends. */
  gone(path: string): void {
    const collection = this.collections.get(path)!;
    this.send(collection, { type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410, message: 'too old resource version' } });
    for (const watcher of collection.watchers) watcher.end();
  }

  /** Cuts every watch connection of a path without a word. */
  drop(path: string): void {
    for (const watcher of this.collections.get(path)!.watchers) watcher.socket?.destroy();
  }

  watchers(path: string): number {
    return this.collections.get(path)!.watchers.size;
  }

  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // Keep-alive and watch connections (also ones still arriving) would hold close() open forever.
    this.server.closeAllConnections();
    await closed;
  }

  private send(collection: Collection, event: object): void {
    collection.history.push({ version: this.resourceVersion, event });
    for (const watcher of collection.watchers) watcher.write(`${JSON.stringify(event)}\n`);
  }
}

function key(object: Obj): string {
  return `${object.metadata.namespace ?? ''}/${object.metadata.name}`;
}
