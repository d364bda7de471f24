// Benchmarks load rules into the kernel: only ever in a network namespace of their own, never in the
// machine's, whoever starts them and however (bench/scale.ts, or a script run by hand).
import { execFileSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// The namespace a script left when it made its own. It names what not to be in, not what to be in:
// inherited by a shell in that same namespace, it still sends the script into a new one.
const LEFT = 'FERRY_BENCH_LEFT_NETNS';

/**
 * Called first by every benchmark script that touches the kernel: unless this process is in the new
 * namespace it made for itself, it runs the script again in a new network namespace (loopback up) and
 * exits with its status. (PID 1's namespace cannot be read here, so "the machine's" is not knowable.)
 */
export function ownNetworkNamespace(scriptUrl: string): void {
  const current = readlinkSync('/proc/self/ns/net');
  const left = process.env[LEFT];
  if (left !== undefined && left !== current) return;
  try {
    execFileSync('unshare', ['--net', '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', process.execPath, ...process.execArgv, fileURLToPath(scriptUrl), ...process.argv.slice(2)], {
      stdio: 'inherit', env: { ...process.env, [LEFT]: current },
    });
    process.exit(0);
  } catch (error) {
    process.exit((error as { status?: number }).status ?? 1);
  }
}
