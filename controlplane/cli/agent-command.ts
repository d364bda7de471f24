// `ferry agent`: wires config, logger, source and the agent together, and stops cleanly on SIGTERM.
import { readFile } from 'node:fs/promises';
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { Agent } from '../agent/agent.js';
import { defaultConfig, parseKubeProxyConfiguration } from '../config/kube-proxy-config.js';
import type { Balancing } from '../model/types.js';
import { KubernetesSource, loadKubeConfig } from '../sources/kubernetes.js';
import { ManifestWatch } from '../sources/manifest-watch.js';
import type { Backend } from '../../dataplane/render.js';
import { execaRunner } from '../../dataplane/runner.js';

export interface AgentCommandOptions {
  node: string;
  kubeconfig?: string;
  manifests?: string;
  config?: string;
  backend?: Backend;
  logFormat: 'json' | 'text';
  cleanupOnExit?: boolean;
  balancing: Balancing;
}

function logger(format: 'json' | 'text'): Logger {
  const level = process.env.FERRY_LOG_LEVEL ?? 'info';
  return format === 'text' ? pino({ level }, pretty({ colorize: false, sync: true })) : pino({ level });
}

/** Runs until SIGTERM or SIGINT; resolves with the exit code. */
export async function runAgent(options: AgentCommandOptions): Promise<number> {
  const log = logger(options.logFormat);
  const { config, warnings } = options.config
    ? parseKubeProxyConfiguration(await readFile(options.config, 'utf8'), options.config)
    : { config: defaultConfig, warnings: [] };
  for (const warning of warnings) log.warn(warning);
  const backend = options.backend ?? config.mode ?? 'nftables';
  const source = options.manifests
    ? new ManifestWatch(options.manifests, log)
    : new KubernetesSource(loadKubeConfig(options.kubeconfig), options.node, log);
  const agent = new Agent({ node: options.node, config, backend, source, runner: execaRunner, logger: log, balancing: options.balancing });
  const stopped = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  await agent.start();
  const signal = await stopped;
  log.info({ signal }, 'stopping');
  await agent.stop({ cleanup: options.cleanupOnExit });
  return 0;
}
