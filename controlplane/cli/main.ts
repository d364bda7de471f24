// The ferry command line: render, diff, apply, cleanup and agent (exit codes are part of the contract).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { applyIfChanged, cleanupAllRules, cleanupRules, diffRules, readFrontends, removeOtherBackends, stampedAs, startSync, type ApplyOutcome, type SyncStart } from '../../dataplane/dataplane.js';
import { cleanupKubeProxy } from '../../dataplane/kube-proxy-cleanup.js';
import { renderedText } from '../../dataplane/render.js';
import { BACKEND_NAMES, DEFAULT_BACKEND, type BackendName } from '../../dataplane/backend-names.js';
import { endpointKey } from '../../rules/names.js';
import { execaRunner } from '../../dataplane/runner.js';
import { describeModelError } from '../model/cluster-state.js';
import { packageRoot } from '../package-root.js';
import type { AgentCommandOptions } from './agent-command.js';
import { ENDPOINTS_OUTPUTS, endpointsReport, type EndpointsOptions } from './endpoints-command.js';
import { servicesReport, SERVICES_OUTPUTS, type ServicesOptions } from './services-command.js';
import { parseDestination, parseSource, traceReport } from './trace-command.js';
import { backendOptions, desiredRules, type DesiredRules, type PlacementOptions, type RuleOptions } from './pipeline.js';

/** klog's -v: a non-negative integer. */
function verbosity(value: string): number {
  const level = Number(value);
  if (!Number.isInteger(level) || level < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return level;
}

/** Exit codes of diff: 0 identical, 1 different, 2 error (as diff(1) has them). */
const EXIT = { same: 0, different: 1, error: 2 } as const;

const EXAMPLE_FILES = '-f examples/cluster.yaml';

const VERSION = (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;

/** A subcommand with --version (kube-proxy has it on the command itself) and errors on one line. */
function command(program: Command, name: string): Command {
  return program.command(name).version(VERSION, '--version', 'print ferry\'s version').configureOutput({ outputError: printError });
}

function ruleCommand(program: Command, name: string, summary: string, example: string): Command {
  const made = command(program, name)
    .summary(summary)
    .description(summary)
    .addHelpText('after', examples(example))
    .requiredOption('--node <name>', 'the Node whose rules to compute (its addresses and pod CIDRs come from its Node object)')
    .addOption(backendOption())
    .option('--config <file>', 'a KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) to honour');
  return withPlacement(withInput(made).addOption(strictOption()));
}

/** The eBPF backend's placement flags: where its programs and pins go (cleanup finds the programs on every interface). */
function withPlacement(made: Command, withDevices = true): Command {
  made
    .option('--cgroup-root <path>', 'ebpf: the cgroup whose processes get socket-level balancing (default: the cgroup2 mount)')
    .option('--bpf-root <path>', 'ebpf: where programs and maps are pinned, on a bpffs, mounted if absent (default: /sys/fs/bpf/ferry)');
  if (withDevices) {
    made.option('--devices <names>', 'ebpf: interfaces for the packet program, comma-separated (default: all but loopback)',
      (value: string, previous: string[] | undefined) => [...(previous ?? []), ...value.split(',').filter(Boolean)]);
  }
  return made;
}

function backendOption(flags = '--backend <backend>', description = `rule backend (default: the config's mode, else ${DEFAULT_BACKEND})`): Option {
  return new Option(flags, description).choices(BACKEND_NAMES);
}

/**
 * Where the objects come from, one of the two: manifests (-f), or one list of the API (--kubeconfig, its
 * --context, --master as the agent has it).
 */
function withInput(made: Command): Command {
  return made
    .addOption(new Option('-f, --file <path>', 'a YAML/JSON manifest or a directory of them, - for standard input; repeatable')
      .argParser(collect).conflicts(['kubeconfig', 'context', 'master']))
    .option('--kubeconfig <file>', 'read the cluster from this kubeconfig\'s API server instead of -f: one list of Services, EndpointSlices, Nodes and ServiceCIDRs, selected as the agent\'s informers select them')
    .option('--context <name>', 'the kubeconfig context to use (default: its current-context)')
    .option('--master <url>', 'the API server\'s address, replacing the kubeconfig\'s (as kube-proxy\'s --master; alone: that server, without credentials)')
    .hook('preAction', (command) => {
      const { file, kubeconfig, context, master } = command.opts<{ file?: string[]; kubeconfig?: string; context?: string; master?: string }>();
      if (file || kubeconfig || master) return;
      command.error(context
        ? 'option \'--context <name>\' picks a context of a kubeconfig: give --kubeconfig <file> too'
        : 'required option \'-f, --file <path>\' not specified, nor --kubeconfig <file> to read a cluster\'s API server');
    });
}

function strictOption(): Option {
  return new Option('--strict', 'exit 2 without doing anything when any object is skipped or any warning is given');
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** commander's own errors (a bad flag, a bad choice): one line and a hint, never the whole help. */
function printError(text: string, write: (text: string) => void): void {
  write(`ferry: ${text.replace(/^error: /, '').trim()} (see --help)\n`);
}

/** Examples after the options, as printed: commander wraps descriptions, and must not break a command line. */
function examples(...lines: string[]): string {
  return `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((line) => `  ${line}`).join('\n')}`;
}

/** Under --strict, anything worth a warning stops the command before it does anything. */
class StrictError extends Error {}

/** Reports skipped objects and warnings on stderr; the rest still renders, unless --strict. */
function report(desired: DesiredRules, strict = false): void {
  for (const warning of desired.warnings) console.error(`ferry: warning: ${warning}`);
  for (const error of desired.modelErrors) console.error(`ferry: ${describeModelError(error)}`);
  const count = desired.warnings.length + desired.modelErrors.length;
  if (strict && count > 0) throw new StrictError(`--strict: ${count} warning${count === 1 ? '' : 's'} or skipped object${count === 1 ? '' : 's'}; nothing done`);
}

async function main(argv: string[]): Promise<number> {
  const program = new Command('ferry')
    .description('A Kubernetes Service dataplane for Linux nodes: kube-proxy compatible NAT rules for nftables and iptables.')
    .version(VERSION, '--version', 'print ferry\'s version')
    .configureOutput({ outputError: printError })
    .exitOverride();
  let exitCode = 0;

  ruleCommand(program, 'render', 'print the whole rule set for a node (an nft -f script or iptables-restore input)',
    `ferry render --node node-a ${EXAMPLE_FILES} --backend iptables`)
    .addOption(new Option('--family <family>', 'iptables only: print just this family\'s restore input').choices(['IPv4', 'IPv6']))
    .action(async (options: RuleOptions & { family?: 'IPv4' | 'IPv6'; strict?: boolean }) => {
      const desired = await desiredRules(options);
      report(desired, options.strict);
      const texts = desired.rendered.texts.filter((part) => !options.family || part.family === options.family);
      process.stdout.write(renderedText({ ...desired.rendered, texts }));
    });

  ruleCommand(program, 'diff', 'show how the kernel\'s ferry rules differ from the desired ones (exit 0 same, 1 different, 2 error)',
    `ferry diff --node node-a ${EXAMPLE_FILES}`)
    .action(async (options: RuleOptions & { strict?: boolean }) => {
      const desired = await desiredRules(options);
      report(desired, options.strict);
      const patch = await diffRules(execaRunner, desired.rendered, (why) => console.error(`ferry: ${why}`));
      process.stdout.write(patch);
      exitCode = patch ? EXIT.different : EXIT.same;
      // apply trusts the stamp of its last write: say when something changed the rules behind it.
      if (patch && await stampedAs(execaRunner, desired.rendered)) console.error('ferry: the rules were changed after ferry wrote them (its stamp is unchanged); ferry apply --force rewrites them');
    });

  ruleCommand(program, 'apply', 'check the rules with the kernel, then apply them in one atomic transaction',
    `ferry apply --node node-a ${EXAMPLE_FILES}`)
    .option('--force', 'write the rules even when ferry\'s stamp in the kernel says they are there (repairs what was changed behind ferry\'s back, which diff shows)')
    .action(async (options: RuleOptions & { strict?: boolean; force?: boolean }) => {
      const started = performance.now();
      // The backend gets ready (eBPF: loads its programs) while the rules are computed.
      let starting: SyncStart | undefined;
      let desired: DesiredRules, outcome: ApplyOutcome;
      try {
        desired = await desiredRules(options, (backend, placement) => (starting = startSync(execaRunner, backend, placement)));
        report(desired, options.strict);
        outcome = await applyIfChanged(execaRunner, desired.rules, desired.backend, { force: options.force, backend: desired.options });
      } finally {
        await starting?.discard();
      }
      // The new backend's rules first, then the other backend's go: never a moment without rules.
      await removeOtherBackends(execaRunner, desired.backend, desired.options);
      const ports = desired.rules.families.flatMap((family) => family.servicePorts);
      const services = new Set(ports.map((port) => port.id.split(':')[0]));
      const endpoints = new Set(ports.flatMap((port) => [...(port.cluster?.endpoints ?? []), ...(port.local?.endpoints ?? [])].map((endpoint) => `${port.id} ${endpointKey(port.protocol, endpoint.ip, endpoint.port)}`)));
      const ms = Math.round(performance.now() - started);
      console.log(!outcome.changed
        ? `ferry: ${desired.backend} rules for ${desired.rules.node} already up to date (${services.size} services, ${ports.length} service ports, ${endpoints.size} endpoints; ${ms} ms)`
        : `ferry: applied ${desired.backend} rules for ${desired.rules.node}: ${services.size} services, ${ports.length} service ports, ${endpoints.size} endpoints; ${outcome.added} ${desired.backend === 'ebpf' ? 'map entries written' : 'rule lines added'}, ${outcome.removed} removed; ${ms} ms`);
    });

  ruleCommand(program, 'trace', 'show where a new connection from a source to a Service address goes on the node, and why',
    'ferry trace --node node-a -f examples/cluster.yaml --from 192.168.56.100 --to 192.168.56.11:30080')
    .requiredOption('--from <ip>', 'the connection\'s source address (one of the node\'s own: a process on the node)', parseSource)
    .requiredOption('--to <address:port>', 'its destination, ADDR:PORT or [ADDR]:PORT for IPv6', parseDestination)
    .addOption(new Option('--protocol <protocol>', 'its protocol').choices(['TCP', 'UDP', 'SCTP']).default('TCP'))
    .addOption(new Option('-o, --output <format>', 'text, or json: verdict, service, entry, masquerade and endpoints').choices(['text', 'json']).default('text'))
    .option('--live', 'answer from what the kernel holds now (the backend\'s rules or maps read back), and say whether the desired rules agree')
    .action(async (options: RuleOptions & { strict?: boolean; from: string; to: { destination: string; port: number }; protocol: string; output: 'text' | 'json'; live?: boolean }) => {
      const desired = await desiredRules(options);
      report(desired, options.strict);
      const live = options.live ? (await readFrontends(execaRunner, [desired.backend], desired.options)).get(desired.backend) : undefined;
      process.stdout.write(traceReport(desired, options.from, options.to, options.protocol, options.output, live));
    });

  const endpoints = command(program, 'endpoints')
    .argument('[service]', 'a Service name (in the namespace); all Services of the namespace when left out')
    .summary('list the endpoints of each Service port and where they come from')
    .description('list the endpoints of each Service port: node, ready/serving/terminating, and whether they come from an '
      + 'EndpointSlice or from the Service\'s selector and the Pods in the input; with --node also whether each is '
      + 'local and which group of that node\'s rules uses it (after the traffic policies).')
    .addHelpText('after', examples('ferry endpoints web -n shop -f examples/app.yaml --node node-a', 'ferry endpoints -A --kubeconfig ~/.kube/config -o wide'))
    .option('-n, --namespace <namespace>', 'the Services\' namespace (default: the kubeconfig context\'s, else "default")')
    .option('-A, --all-namespaces', 'the Services of every namespace');
  withInput(endpoints)
    .addOption(strictOption())
    .option('--node <name>', 'also show what this node\'s rules use')
    .option('--config <file>', 'a KubeProxyConfiguration, for --node')
    .addOption(new Option('-o, --output <format>', 'table; wide: also family, cluster IP, EndpointSlice and zone; json or yaml: the same records, every field; '
      + 'endpointslices: the EndpointSlices derived from Pods, as YAML to feed back').choices(ENDPOINTS_OUTPUTS).default('table'))
    .action(async (service: string | undefined, options: EndpointsOptions & { strict?: boolean }) => {
      const { text, messages } = await endpointsReport(service, options);
      for (const message of messages) console.error(`ferry: warning: ${message}`);
      if (options.strict && messages.length > 0) throw new StrictError(`--strict: ${messages.length} warning${messages.length === 1 ? '' : 's'}; nothing printed`);
      process.stdout.write(text);
    });

  withPlacement(command(program, 'services'))
    .summary('list the Service frontends the kernel holds now, with their endpoints and shares')
    .description('list the Service frontends the kernel holds now: one line per address, port and protocol with its kind, '
      + 'Service, verdict and endpoints (each with its share of new connections, the load-aware weights included), read '
      + 'back from the live rules or maps of every backend (or of --backend), not from the cluster. Every namespace unless '
      + '-n; eBPF maps hold no Service names.')
    .addHelpText('after', examples('ferry services', 'ferry services --backend nftables -n shop -o wide', 'ferry services -o json'))
    .addOption(new Option('--backend <backend>', 'only this backend\'s kernel state').choices(BACKEND_NAMES))
    .option('-n, --namespace <namespace>', 'only frontends of this namespace\'s Services')
    .option('-A, --all-namespaces', 'every namespace (the default)')
    .addOption(new Option('-o, --output <format>', 'table; wide: also affinity and source ranges; json or yaml: every field').choices(SERVICES_OUTPUTS).default('table'))
    .action(async (options: ServicesOptions) => {
      const { text, message } = await servicesReport(execaRunner, options);
      if (message) console.error(`ferry: ${message}`);
      process.stdout.write(text);
    });

  command(program, 'top')
    .summary('a live view of the node\'s load-aware balancer: per endpoint, connections, load, weight and share, busiest first')
    .description('a live view of the load-aware balancer on this node, read from the agent (its /balancer, on the metrics address): '
      + 'per Service port and endpoint the live connections at the last sample, the smoothed load, the integer weight in the rules '
      + 'last synced and its share of new connections (cluster group; local group where there is one), sorted by load, busiest first, '
      + 'the busiest highlighted (on a terminal, unless NO_COLOR). Refreshes every --interval until Ctrl-C; --once prints one frame. '
      + 'Every namespace unless -n.')
    .addHelpText('after', examples('ferry top', 'ferry top --once -o json --metrics-address 127.0.0.1:10249', 'ferry top -n shop --interval 5'))
    .option('--metrics-address <host:port>', 'the agent\'s metricsBindAddress', '127.0.0.1:10249')
    .option('--once', 'print one frame and exit')
    .addOption(new Option('-o, --output <format>', 'table, or json: the agent\'s /balancer document').choices(['table', 'json']).default('table'))
    .option('-n, --namespace <namespace>', 'only Service ports of this namespace')
    .option('-A, --all-namespaces', 'every namespace (the default)')
    .addOption(new Option('--interval <seconds>', 'seconds between frames').default(2).argParser((value: string) => {
      const seconds = Number(value);
      if (!(seconds > 0)) throw new InvalidArgumentError('must be a positive number of seconds');
      return seconds;
    }))
    .action(async (options: import('./top-command.js').TopOptions) => {
      const { processIO, runTop } = await import('./top-command.js');
      await runTop(options, processIO());
    });

  withPlacement(command(program, 'agent'))
    .summary('run as the node\'s Service proxy: follow the cluster and keep the kernel\'s rules in step')
    .description([
      'run as the node\'s Service proxy: follow the cluster and keep the kernel\'s rules in step',
      'Without --manifests it follows the Kubernetes API: --kubeconfig, else the config\'s clientConnection.kubeconfig, '
        + 'else $KUBECONFIG or ~/.kube/config, else the in-cluster service account. kube-proxy\'s flags --config, '
        + '--hostname-override, --kubeconfig, --master, --proxy-mode and --v are accepted, so a kube-proxy DaemonSet keeps '
        + 'its args; flags win over the config file. Rules stay in the kernel when the agent stops (use --cleanup-on-exit '
        + 'to remove them).',
    ].join('\n\n'))
    .addHelpText('after', examples(
      'ferry agent --config=/var/lib/kube-proxy/config.conf --hostname-override=node-a',
      'ferry agent --node node-a --manifests /etc/ferry/manifests --config /etc/ferry/kube-proxy.yaml',
    ))
    .option('--node <name>', 'the Node this agent runs on (default: the config\'s hostnameOverride, else the host name)')
    .option('--hostname-override <name>', 'the same as --node (kube-proxy\'s flag)')
    .option('--kubeconfig <path>', 'kubeconfig of the API to follow')
    .option('--master <url>', 'the API server\'s address, replacing the kubeconfig\'s (as kube-proxy\'s --master)')
    .option('--manifests <dir>', 'follow a directory of YAML manifests instead of the API')
    .option('--config <file>', 'a KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) to honour')
    .addOption(new Option('--backend <backend>', `rule backend (default: the config's mode, else ${DEFAULT_BACKEND})`).choices([...BACKEND_NAMES, '']))
    .addOption(new Option('--metrics-naming <naming>', 'metric names: ferry (ferry_*) or kube-proxy (kubeproxy_*, for dashboards made for kube-proxy)').choices(['ferry', 'kube-proxy']).default('ferry'))
    .addOption(new Option('--proxy-mode <mode>', 'the same as --backend (kube-proxy\'s flag)').choices([...BACKEND_NAMES, '']))
    .addOption(new Option('--v <level>', 'log verbosity as kube-proxy\'s: 4 logs debug lines, 6 more (every sync is logged at 0)').argParser(verbosity))
    .addOption(new Option('--log-format <format>', 'json for machines, text for people').choices(['json', 'text']).default('json'))
    .option('--cleanup-on-exit', 'remove ferry\'s rules when stopped by SIGTERM or SIGINT')
    .addOption(new Option('--balancing <mode>', 'endpoint choice for Services without a ferry.dev/balancing annotation: least-busy measures live connections (conntrack) and favours the less busy; uniform is kube-proxy\'s').choices(['least-busy', 'uniform']).default('least-busy'))
    .action(async (options: AgentCommandOptions & { hostnameOverride?: string; proxyMode?: BackendName | '' }) => {
      const { hostnameOverride, proxyMode, ...rest } = options;
      // Loaded here: the Kubernetes client is only the agent's, and loading it costs every command ~0.3 s.
      const { runAgent } = await import('./agent-command.js');
      const code = await runAgent({ ...rest, node: rest.node || hostnameOverride, backend: rest.backend || proxyMode });
      // Watches and sockets of a stopped source must not keep the process alive.
      process.exit(code);
    });

  const cleanup = command(program, 'cleanup')
    .summary('remove everything ferry owns from the kernel (and nothing else); --kube-proxy: kube-proxy\'s rules instead')
    .description([
      'remove everything ferry owns from the kernel (and nothing else): every backend\'s, or only --backend\'s.',
      'With --kube-proxy it removes instead what kube-proxy\'s iptables and nftables modes left, and keeps ferry\'s rules (so it '
        + 'can run before every agent start): kube-proxy\'s KUBE-* chains (iptables legacy and nft, IPv4 and IPv6; the kubelet\'s '
        + 'KUBE-FIREWALL and canaries stay) and its kube-proxy nftables tables. IPVS is not handled: run kube-proxy --cleanup for it.',
    ].join('\n\n'))
    .addHelpText('after', examples('ferry cleanup', 'ferry cleanup --kube-proxy     # migrating a node from kube-proxy'))
    .addOption(backendOption('--backend <backend>', 'only this backend\'s rules'))
    .option('--kube-proxy', 'remove kube-proxy\'s rules (iptables and nftables modes) and keep ferry\'s; with --backend, that backend\'s too');
  withPlacement(cleanup, false)
    .action(async (options: { backend?: BackendName; kubeProxy?: boolean } & PlacementOptions) => {
      if (options.backend) await cleanupRules(execaRunner, options.backend, backendOptions(options));
      else if (!options.kubeProxy) await cleanupAllRules(execaRunner, backendOptions(options));
      if (options.kubeProxy) {
        const removed = await cleanupKubeProxy(execaRunner);
        const chains = [...removed.iptables].map(([variant, count]) => `${count} chains (${variant})`);
        const tables = removed.nftables.map((table) => `table ${table}`);
        console.log(`ferry: removed kube-proxy's ${[...chains, ...tables].join(', ') || 'rules: there were none'}`);
      }
    });

  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help') return 0;
    if (code?.startsWith('commander.')) return EXIT.error;
    console.error(`ferry: ${(error as Error).message}`);
    return EXIT.error;
  }
}

// `ferry render ... | head` closes the pipe early: that is the reader's choice, not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(process.exitCode ?? 0);
});
process.exitCode = await main(process.argv);
