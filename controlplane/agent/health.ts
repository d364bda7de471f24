// HTTP endpoints for operators and load balancers: /healthz and /livez as kube-proxy serves them,
// /metrics, and one health-check node port per externalTrafficPolicy Local Service.
import { createServer, type Server } from 'node:http';
import type { HealthCheck } from '../../rules/node-rules.js';

/** What /healthz and /livez report. */
export interface HealthStatus {
  /** /healthz: a sync succeeded and no change has waited longer than twice syncPeriod. */
  healthy: boolean;
  /** /livez: the agent makes progress; waiting for its first view of the cluster counts as alive. */
  live: boolean;
  /** In words, for the person reading the probe's body: "waiting for the API server", "synced", ... */
  state: string;
  lastUpdated: Date | undefined;
}

/** Starts an HTTP server on host:port ("[::]:10256" or "0.0.0.0:10256") and resolves once it listens. */
export function listen(address: string, handler: Parameters<typeof createServer>[1]): Promise<Server> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(colon + 1));
  const server = createServer(handler);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => resolve(server));
  });
}

export function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** A probe answered, with its HTTP status: what kube-proxy's proxy_healthz_total and proxy_livez_total count. */
export type ProbeCounter = (probe: 'healthz' | 'livez', code: number) => void;

/** What a server answers besides /healthz and /livez; each path is served only when given. */
export interface HealthExtras {
  /** /metrics. */
  metrics?: () => Promise<{ contentType: string; body: string }>;
  /** /proxyMode: the backend, as kube-proxy's plain text. */
  proxyMode?: string;
  /** Hears each /healthz and /livez answer (the health server's counters). */
  counted?: ProbeCounter;
  /** /balancer: the agent's balancer view as JSON. */
  balancer?: () => object;
}

/**
 * The /healthz and /livez handler, with the `extra` paths given: /metrics, /proxyMode, /balancer (what
 * `ferry top` reads). The health server counts its probes (`counted`), as kube-proxy counts those of its
 * healthz server and not the metrics server's.
 */
export function healthHandler(status: () => HealthStatus, extra: HealthExtras = {}): Parameters<typeof createServer>[1] {
  const { metrics, proxyMode, counted, balancer } = extra;
  return (request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/healthz' || path === '/livez') {
      const { healthy, live, state, lastUpdated } = status();
      const ok = path === '/healthz' ? healthy : live;
      counted?.(path === '/healthz' ? 'healthz' : 'livez', ok ? 200 : 503);
      response.writeHead(ok ? 200 : 503, { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff' });
      response.end(JSON.stringify({ lastUpdated: lastUpdated?.toISOString() ?? '', currentTime: new Date().toISOString(), state }));
    } else if (path === '/proxyMode' && proxyMode) {
      response.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
      response.end(proxyMode);
    } else if (path === '/balancer' && balancer) {
      response.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
      response.end(JSON.stringify(balancer()));
    } else if (path === '/metrics' && metrics) {
      void metrics().then(({ contentType, body }) => {
        response.writeHead(200, { 'Content-Type': contentType });
        response.end(body);
      });
    } else {
      response.writeHead(404).end();
    }
  };
}

/** The health-check node ports: 200 while the node has local endpoints, 503 so load balancers skip it. */
export class HealthCheckPorts {
  private readonly servers = new Map<number, Server>();
  private readonly checks = new Map<number, HealthCheck>();

  /** Opens, updates and closes ports to match the given checks. */
  async update(checks: HealthCheck[]): Promise<void> {
    const wanted = new Map(checks.map((check) => [check.port, check]));
    for (const [port, server] of this.servers) {
      if (!wanted.has(port)) {
        this.servers.delete(port);
        this.checks.delete(port);
        await close(server);
      }
    }
    for (const [port, check] of wanted) {
      this.checks.set(port, check);
      if (!this.servers.has(port)) this.servers.set(port, await listen(`[::]:${port}`, (_request, response) => this.answer(port, response)));
    }
  }

  async close(): Promise<void> {
    await this.update([]);
  }

  private answer(port: number, response: Parameters<Parameters<typeof createServer>[1] & object>[1]): void {
    const check = this.checks.get(port);
    const local = check?.localEndpoints ?? 0;
    response.writeHead(local > 0 ? 200 : 503, { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff' });
    response.end(JSON.stringify({
      service: { namespace: check?.namespace ?? '', name: check?.name ?? '' },
      localEndpoints: local,
      serviceProxyHealthy: true,
    }));
  }
}
