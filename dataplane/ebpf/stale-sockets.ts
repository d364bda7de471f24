// UDP sockets of the socket path still connected to endpoints that went away: found in every network
// namespace of the cgroup's processes and aborted.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { StaleFlow } from '../../rules/stale-flow.js';
import { DataplaneError, type Runner } from '../runner.js';

/**
 * A socket of a pod or of the node connected to a gone endpoint has no conntrack entry to delete
 * (connect() itself chose the endpoint, no NAT involved), so it is aborted (ss -K, the kernel's
 * SOCK_DESTROY) in the network namespace of every process of the cgroup: the application sees
 * ECONNABORTED and connects again, to a live endpoint. Any UDP socket to that address goes.
 */
export async function abortStaleSockets(runner: Runner, flows: StaleFlow[], cgroup: string): Promise<void> {
  const endpoints = [...new Set(flows.map((flow) => flow.dstNat).filter((ip): ip is string => Boolean(ip)))];
  if (!endpoints.length) return;
  for (const pid of await namespaceHolders(cgroup)) {
    for (const ip of endpoints) {
      const result = await runner.run('nsenter', [`--net=/proc/${pid}/ns/net`, '--', 'ss', '-K', '-u', 'dst', ip]);
      // The process may have ended meanwhile; its namespace then has no socket to abort.
      if (result.exitCode !== 0 && !/No such file|No such process/.test(result.stderr)) throw new DataplaneError(`ss -K -u dst ${ip}`, result, 'aborting UDP sockets to a gone endpoint');
    }
  }
}

/** One process per network namespace among the processes in the cgroup and below it. */
async function namespaceHolders(cgroup: string): Promise<number[]> {
  const holders = new Map<number, number>();
  const visit = async (directory: string): Promise<void> => {
    const procs = await readFile(join(directory, 'cgroup.procs'), 'utf8').catch(() => '');
    for (const pid of procs.split('\n').filter(Boolean).map(Number)) {
      const namespace = await stat(`/proc/${pid}/ns/net`).then((info) => info.ino, () => undefined);
      if (namespace !== undefined && !holders.has(namespace)) holders.set(namespace, pid);
    }
    const entries = await readdir(directory, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) if (entry.isDirectory()) await visit(join(directory, entry.name));
  };
  await visit(cgroup);
  return [...holders.values()];
}

