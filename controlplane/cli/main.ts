// The ferry command line: render, diff, apply, cleanup and agent (exit codes are part of the contract).
import { hostname } from 'node:os';
import { Command, Option } from 'commander';
import { applyIfChanged, cleanupRules, diffRules, stampedAs } from '../../dataplane/dataplane.js';
import { renderedText, type Backend } from '../../dataplane/render.js';
import { execaRunner } from '../../dataplane/runner.js';
import { describeModelError } from '../model/cluster-state.js';
import { runAgent, type AgentCommandOptions } from './agent-command.js';
import { endpointsReport, type EndpointsOptions } from './endpoints-command.js';
import { desiredRules, type DesiredRules, type RuleOptions } from './pipeline.js';

/** Exit codes of diff: 0 identical, 1 different, 2 error (as diff(1) has them). */
const EXIT = { same: 0, different: 1, error: 2 } as const;

const EXAMPLE_FILES = '-f examples/cluster.yaml';

function ruleCommand(program: Command, name: string, summary: string, example: string): Command {
  return program.command(name)
    .summary(summary)
    .description(`${summary}\n\nExample:\n  ${example}`)
    .requiredOption('--node <name>', 'the Node whose rules to compute (its addresses and pod CIDRs come from its Node object)')
    .addOption(backendOption())
    .option('--config <file>', 'a KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) to honour')
    .requiredOption('-f, --file <path>', 'a YAML/JSON manifest or a directory of them; repeatable', collect, []);
}

function backendOption(): Option {
  return new Option('--backend <backend>', 'rule backend (default: the config\'s mode, else nftables)').choices(['nftables', 'iptables']);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Reports skipped objects and config warnings on stderr; the rest still renders. */
function report(desired: DesiredRules): void {
  for (const warning of desired.warnings) console.error(`ferry: warning: ${warning}`);
  for (const error of desired.modelErrors) console.error(`ferry: ${describeModelError(error)}`);
}

async function main(argv: string[]): Promise<number> {
  const program = new Command('ferry')
    .description('A Kubernetes Service dataplane for Linux nodes: kube-proxy compatible NAT rules for nftables and iptables.')
    .showHelpAfterError()
    .exitOverride();
  let exitCode = 0;

  ruleCommand(program, 'render', 'print the whole rule set for a node (an nft -f script or iptables-restore input)',
    `ferry render --node node-a ${EXAMPLE_FILES} --backend iptables`)
    .addOption(new Option('--family <family>', 'iptables only: print just this family\'s restore input').choices(['IPv4', 'IPv6']))
    .action(async (options: RuleOptions & { family?: 'IPv4' | 'IPv6' }) => {
      const desired = await desiredRules(options);
      report(desired);
      const texts = desired.rendered.texts.filter((part) => !options.family || part.family === options.family);
      process.stdout.write(renderedText({ ...desired.rendered, texts }));
    });

  ruleCommand(program, 'diff', 'show how the kernel\'s ferry rules differ from the desired ones (exit 0 same, 1 different, 2 error)',
    `ferry diff --node node-a ${EXAMPLE_FILES}`)
    .action(async (options: RuleOptions) => {
      const desired = await desiredRules(options);
      report(desired);
      const patch = await diffRules(execaRunner, desired.rendered);
      process.stdout.write(patch);
      exitCode = patch ? EXIT.different : EXIT.same;
      // apply trusts the stamp of its last write: say when something changed the rules behind it.
      if (patch && await stampedAs(execaRunner, desired.rendered)) console.error('ferry: the rules were changed after ferry wrote them (its stamp is unchanged); ferry apply --force rewrites them');
    });

  ruleCommand(program, 'apply', 'check the rules with the kernel, then apply them in one atomic transaction',
    `ferry apply --node node-a ${EXAMPLE_FILES}`)
    .option('--force', 'write the rules even when ferry\'s stamp in the kernel says they are there (repairs what was changed behind ferry\'s back, which diff shows)')
    .action(async (options: RuleOptions & { force?: boolean }) => {
      const started = performance.now();
      const desired = await desiredRules(options);
      report(desired);
      const outcome = await applyIfChanged(execaRunner, desired.rendered, { force: options.force });
      const ports = desired.rules.families.flatMap((family) => family.servicePorts);
      const services = new Set(ports.map((port) => port.id.split(':')[0]));
      const endpoints = new Set(ports.flatMap((port) => [...(port.cluster?.endpoints ?? []), ...(port.local?.endpoints ?? [])].map((endpoint) => endpoint.hash)));
      const ms = Math.round(performance.now() - started);
      console.log(!outcome.changed
        ? `ferry: ${desired.backend} rules for ${desired.rules.node} already up to date (${services.size} services, ${ports.length} service ports, ${endpoints.size} endpoints; ${ms} ms)`
        : `ferry: applied ${desired.backend} rules for ${desired.rules.node}: ${services.size} services, ${ports.length} service ports, ${endpoints.size} endpoints; ${outcome.added} rule lines added, ${outcome.removed} removed; ${ms} ms`);
    });

  program.command('endpoints')
    .argument('[service]', 'a Service name (in -n NAMESPACE, default "default"); all Services when left out')
    .summary('list the endpoints of each Service port and where they come from')
    .description([
      'list the endpoints of each Service port: node, ready/serving/terminating, and whether they come from an',
      'EndpointSlice or from the Service\'s selector and the Pods in the input; with --node also whether each is',
      'local and which group of that node\'s rules uses it (after the traffic policies).',
      '',
      'Example:',
      '  ferry endpoints web -n shop -f examples/app.yaml --node node-a',
    ].join('\n'))
    .option('-n, --namespace <namespace>', 'the Services\' namespace')
    .requiredOption('-f, --file <path>', 'a YAML/JSON manifest or a directory of them; repeatable', collect, [])
    .option('--node <name>', 'also show what this node\'s rules use')
    .option('--config <file>', 'a KubeProxyConfiguration, for --node')
    .addOption(new Option('-o, --output <format>', 'table, or yaml for the EndpointSlices derived from Pods').choices(['table', 'yaml']).default('table'))
    .action(async (service: string | undefined, options: EndpointsOptions) => {
      const { text, messages } = await endpointsReport(service, options);
      for (const message of messages) console.error(`ferry: warning: ${message}`);
      process.stdout.write(text);
    });

  program.command('agent')
    .summary('run as the node\'s Service proxy: follow the cluster and keep the kernel\'s rules in step')
    .description([
      'run as the node\'s Service proxy: follow the cluster and keep the kernel\'s rules in step',
      '',
      'Without --manifests it follows the Kubernetes API: --kubeconfig, else $KUBECONFIG or ~/.kube/config, else the',
      'in-cluster service account. Rules stay in the kernel when the agent stops (use --cleanup-on-exit to remove them).',
      '',
      'Example:',
      '  ferry agent --node node-a --manifests /etc/ferry/manifests --config /etc/ferry/kube-proxy.yaml',
    ].join('\n'))
    .option('--node <name>', 'the Node this agent runs on (default: the host name, like kube-proxy\'s --hostname-override)', hostname())
    .option('--kubeconfig <path>', 'kubeconfig of the API to follow')
    .option('--manifests <dir>', 'follow a directory of YAML manifests instead of the API')
    .option('--config <file>', 'a KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) to honour')
    .addOption(backendOption())
    .addOption(new Option('--log-format <format>', 'json for machines, text for people').choices(['json', 'text']).default('json'))
    .option('--cleanup-on-exit', 'remove ferry\'s rules when stopped by SIGTERM or SIGINT')
    .addOption(new Option('--balancing <mode>', 'endpoint choice for Services without a ferry.dev/balancing annotation: least-busy measures live connections (conntrack) and favours the less busy; uniform is kube-proxy\'s').choices(['least-busy', 'uniform']).default('least-busy'))
    .action(async (options: AgentCommandOptions) => {
      // Watches and sockets of a stopped source must not keep the process alive.
      process.exit(await runAgent(options));
    });

  program.command('cleanup')
    .summary('remove everything ferry owns from the kernel (and nothing else)')
    .description('remove everything ferry owns from the kernel (and nothing else)\n\nExample:\n  ferry cleanup --backend iptables')
    .addOption(new Option('--backend <backend>', 'rule backend').choices(['nftables', 'iptables']).default('nftables'))
    .action(async (options: { backend: Backend }) => {
      await cleanupRules(execaRunner, options.backend);
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

process.exitCode = await main(process.argv);
