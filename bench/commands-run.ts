// The commands as a user runs them, each a whole process, timed from inside one throwaway network
// namespace that bench/scale.ts made for this run alone (started by hand, it makes its own). Prints one JSON line.
//   --mode kernel:   `nft -f SCRIPT` alone (what the kernel takes for the rendered script)
//   --mode commands: ferry render, ferry apply into the empty namespace, ferry apply again, ferry diff,
//                    `nft list table` alone, then an agent start over the rules apply left (a restart)
//   --mode agent:    an agent start in the empty namespace, until its first sync is in the kernel
//   --mode apply:    ferry apply into the empty namespace alone (a second sample beside --mode kernel)
// --backend ebpf (default nftables): the commands get a cgroup and bpffs of this run's own (their
// processes are not moved into it: only attaching is timed), and `nft list table` is left out.
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { AGENT_NODE_FLAGS } from '../controlplane/agent/node-flags.js';
import { benchPlacement, ownNetworkNamespace } from './own-namespace.js';

ownNetworkNamespace(import.meta.url);

const { values } = parseArgs({ options: { mode: { type: 'string' }, script: { type: 'string' }, manifests: { type: 'string' }, ferry: { type: 'string' }, backend: { type: 'string', default: 'nftables' } } });
const SYSTEM_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';
// Any one process of a size this bench runs: the 50,000-Service listing takes minutes, never an hour.
const PROCESS_TIMEOUT_MS = 30 * 60_000;
const placement = values.backend === 'ebpf' ? await benchPlacement({ enter: false }) : undefined;
const placementFlags = placement ? ['--cgroup-root', placement.cgroup, '--bpf-root', placement.pinDir] : [];
const ruleFlags = ['--node', 'node-0', '-f', values.manifests ?? '', '--backend', values.backend!, ...placementFlags];

/** Runs a command to its end; its wall-clock milliseconds, exit code and last line of output. */
function timed(command: string, args: string[], accept = [0]): { ms: number; exitCode: number; line: string } {
  const t0 = performance.now();
  const result = spawnSync(command, args, { encoding: 'utf8', env: { PATH: SYSTEM_PATH }, timeout: PROCESS_TIMEOUT_MS, maxBuffer: 1 << 30 });
  const ms = performance.now() - t0;
  const exitCode = result.status ?? -1;
  if (!accept.includes(exitCode)) throw new Error(`${command} ${args.join(' ')} exited ${exitCode} (${result.error?.message ?? ''}): ${result.stderr.slice(-500)}`);
  return { ms, exitCode, line: (result.stdout.trim().split('\n').at(-1) ?? '').slice(0, 300) };
}

const ferry = (args: string[], accept = [0]) => timed(process.execPath, [values.ferry!, ...args], accept);

/**
 * Starts `ferry agent --manifests`, and resolves when it logs its first sync (FERRY_LOG_LEVEL=debug logs
 * each one, after the kernel has the rules), with the sync's kind; then stops it with SIGTERM (the rules stay).
 */
async function agentStart(): Promise<{ ms: number; kind: string }> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, values.ferry!, 'agent', '--node', 'node-0', '--manifests', values.manifests!, '--backend', values.backend!, ...placementFlags, '--balancing', 'uniform'], {
    env: { PATH: SYSTEM_PATH, FERRY_LOG_LEVEL: 'debug' }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), PROCESS_TIMEOUT_MS);
  try {
    for await (const line of createInterface({ input: child.stdout })) {
      if (!line.includes('"msg":"synced"')) continue;
      const ms = performance.now() - t0;
      return { ms, kind: (JSON.parse(line) as { kind: string }).kind };
    }
    throw new Error(`the agent exited (${child.exitCode}) before its first sync`);
  } finally {
    clearTimeout(timer);
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve));
  }
}

spawnSync('ip', ['link', 'set', 'lo', 'up'], { env: { PATH: SYSTEM_PATH } });
if (values.mode === 'kernel') {
  console.log(JSON.stringify({ nftMs: timed('nft', ['-f', values.script!]).ms }));
} else if (values.mode === 'agent') {
  console.log(JSON.stringify({ agentFresh: await agentStart() }));
} else if (values.mode === 'apply') {
  console.log(JSON.stringify({ applyFreshMs: ferry(['apply', ...ruleFlags]).ms }));
} else {
  const render = timed('sh', ['-c', '"$0" "$@" > /dev/null', process.execPath, values.ferry!, 'render', ...ruleFlags]);
  const applyFresh = ferry(['apply', ...ruleFlags]);
  const applyAgain = ferry(['apply', ...ruleFlags]);
  // Exit 1 would mean the kernel differs from what apply wrote: reported, not hidden.
  const diff = ferry(['diff', ...ruleFlags], [0, 1]);
  const list = values.backend === 'nftables' ? timed('sh', ['-c', 'nft list table ip ferry > /dev/null']) : { ms: Number.NaN };
  const agentRestart = await agentStart();
  const summary = (step: { ms: number; line: string }) => ({ ms: step.ms, line: step.line });
  console.log(JSON.stringify({
    renderMs: render.ms, applyFresh: summary(applyFresh), applyAgain: summary(applyAgain), diff: { ms: diff.ms, exitCode: diff.exitCode }, listMs: list.ms, agentRestart,
  }));
}
if (placement) {
  ferry(['cleanup', '--backend', 'ebpf', '--cgroup-root', placement.cgroup, '--bpf-root', placement.pinDir]);
  await placement.remove();
}
