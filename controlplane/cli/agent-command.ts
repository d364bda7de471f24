// `ferry agent`: wires config, logger, source and the agent together, and stops within two seconds
// on SIGTERM or SIGINT, whatever it is doing then.
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { pino, type Level, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { Agent } from '../agent/agent.js';
import type { MetricsNaming } from '../agent/metrics.js';
import { defaultConfig, parseKubeProxyConfiguration, type FerryConfig } from '../config/kube-proxy-config.js';
import type { Balancing } from '../model/types.js';
import { ManifestWatch } from '../sources/manifest-watch.js';
import { DEFAULT_BACKEND, type BackendName } from '../../dataplane/backend-names.js';
import { cleanupRules } from '../../dataplane/dataplane.js';
import { abortCommands, execaRunner } from '../../dataplane/runner.js';
import { backendOptions, type PlacementOptions } from './pipeline.js';

/** The flags of `ferry agent`; the kube-proxy spellings are folded into these by the CLI. */
export interface AgentCommandOptions extends PlacementOptions {
  /** --node or --hostname-override; empty means unset. */
  node?: string;
  kubeconfig?: string;
  master?: string;
  manifests?: string;
  config?: string;
  /** --backend or --proxy-mode; empty means unset. */
  backend?: BackendName | '';
  /** --v: klog verbosity. */
  v?: number;
  logFormat: 'json' | 'text';
  cleanupOnExit?: boolean;
  balancing: Balancing;
  /** --metrics-naming: ferry's metric names (ferry_*, the default) or kube-proxy's (kubeproxy_*), for its dashboards and alerts. */
  metricsNaming?: MetricsNaming;
}

/**
 * How long a sync in progress may go on after a signal. Stopping must take less than 2 s in all, and
 * the signal itself may have waited for a stretch of computing to end (see Agent.checkpoint).
 */
const STOP_DEADLINE_MS = 700;

/** klog verbosity to a pino level: debug from -v=4, trace from 6 (each sync is an info line). */
function levelOf(verbosity: number): Level {
  return verbosity >= 6 ? 'trace' : verbosity >= 4 ? 'debug' : 'info';
}

function logger(format: 'json' | 'text', level: string): Logger {
  return format === 'text' ? pino({ level }, pretty({ colorize: false, sync: true })) : pino({ level });
}

/** The agent's settings from flags, then the config file, then defaults (flags win, as kube-proxy's do). */
export function agentSettings(options: AgentCommandOptions, config: FerryConfig): { node: string; backend: BackendName; kubeconfig?: string; verbosity: number } {
  return {
    node: options.node?.trim().toLowerCase() || config.hostnameOverride || hostname().toLowerCase(),
    backend: options.backend || config.mode || DEFAULT_BACKEND,
    kubeconfig: options.kubeconfig || config.kubeconfig,
    verbosity: options.v ?? config.verbosity,
  };
}

/** The API as the agent's source; its client is loaded only here (importing it costs a start ~0.3 s). */
async function apiSource(settings: ReturnType<typeof agentSettings>, master: string | undefined, log: Logger) {
  const { KubernetesSource, loadKubeConfig } = await import('../sources/kubernetes.js');
  return new KubernetesSource(loadKubeConfig(settings.kubeconfig, master), settings.node, log);
}

/** Runs until SIGTERM or SIGINT; resolves with the exit code. */
export async function runAgent(options: AgentCommandOptions): Promise<number> {
  // Listen first: a signal during start-up (the API not answering yet) must stop the agent too.
  const signalled = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  const { config, warnings } = options.config
    ? parseKubeProxyConfiguration(await readFile(options.config, 'utf8'), options.config)
    : { config: defaultConfig, warnings: [] };
  const settings = agentSettings(options, config);
  const log = logger(options.logFormat, process.env.FERRY_LOG_LEVEL ?? levelOf(settings.verbosity));
  for (const warning of warnings) log.warn(warning);
  if (!options.backend && !config.mode) log.info({ backend: settings.backend }, 'no mode configured: ferry uses nftables (kube-proxy would use iptables on Linux; set mode or --proxy-mode to choose)');
  const source = options.manifests ? new ManifestWatch(options.manifests, log) : await apiSource(settings, options.master, log);
  const agent = new Agent({ node: settings.node, config, backend: settings.backend, backendOptions: backendOptions(options), source, runner: execaRunner, logger: log, balancing: options.balancing,
    metricsNaming: options.metricsNaming });
  const started = agent.start().then(() => undefined, (error: unknown) => error as Error);
  const first = await Promise.race([signalled, started]);
  if (first instanceof Error) throw first;
  const signal = first ?? await signalled;
  log.info({ signal }, 'stopping');
  // A sync in progress gets what is left of the deadline; a kernel command still running then is
  // killed, so the kernel keeps the rules it had or the whole new transaction, never part of one.
  const stopped = await Promise.race([agent.stop().then(() => true), delay(STOP_DEADLINE_MS).then(() => false)]);
  if (!stopped) log.warn({ killed: abortCommands() }, 'stopped before the sync in progress ended; the kernel keeps the rules it had or the whole new transaction');
  if (options.cleanupOnExit) {
    await cleanupRules(execaRunner, settings.backend, backendOptions(options));
    log.info('removed ferry\'s rules');
  }
  return 0;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
