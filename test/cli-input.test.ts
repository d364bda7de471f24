import { join } from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { packageRoot } from '../controlplane/package-root.js';
import { ferry } from './helpers/cli.js';

const root = packageRoot();

/** Runs the compiled `ferry ARGS` from the repository root with a file (a path from the root) or a text as its standard input. */
async function ferryWithInput(args: string[], input: { file: string } | { text: string }) {
  const stdin = 'file' in input ? { inputFile: join(root, input.file) } : { input: input.text };
  const result = await execa(process.execPath, [join(root, 'bin', 'ferry.js'), ...args], { cwd: root, reject: false, ...stdin });
  return { stdout: String(result.stdout), stderr: String(result.stderr), exitCode: result.exitCode ?? -1 };
}

test('ferry render -f - reads the manifests from standard input and prints what -f FILE prints', async (t) => {
  const fromFile = await ferry(['render', '--node', 'node-a', '-f', 'examples/cluster.yaml']);
  const fromStdin = await ferryWithInput(['render', '--node', 'node-a', '-f', '-'], { file: 'examples/cluster.yaml' });
  t.is(fromStdin.exitCode, 0, fromStdin.stderr);
  t.is(fromStdin.stderr, '');
  t.is(fromStdin.stdout, fromFile.stdout);
  t.regex(fromStdin.stdout, /^table ip ferry \{$/m);
});

test('ferry render -f - combines standard input with files', async (t) => {
  const both = await ferryWithInput(['render', '--node', 'node-a', '-f', 'examples/cluster.yaml', '-f', '-'], { file: 'test/fixtures/edge-cases.yaml' });
  const files = await ferry(['render', '--node', 'node-a', '-f', 'examples/cluster.yaml', '-f', 'test/fixtures/edge-cases.yaml']);
  t.is(both.exitCode, 0, both.stderr);
  t.is(both.stdout, files.stdout);
});

test('a YAML error on standard input names <stdin>, with exit code 2', async (t) => {
  const { exitCode, stderr, stdout } = await ferryWithInput(['render', '--node', 'node-a', '-f', '-'], { text: 'apiVersion: v1\nkind: [Service\n' });
  t.is(exitCode, 2);
  t.is(stdout, '');
  t.regex(stderr, /^ferry: <stdin>: /);
});

const typos = `
apiVersion: v1
kind: Service
metadata: {name: typo, namespace: shop}
spec:
  type: NodePort
  clusterIP: 10.96.10.90
  externalTraficPolicy: Local
  ports:
  - {name: http, port: 80, targetPrt: 8080, nodePort: 30090}
---
apiVersion: v1
kind: Servce
metadata: {name: typo-kind, namespace: shop}
`;

test('unknown fields and kinds are warnings on stderr naming object and path, and the rules still render', async (t) => {
  const { exitCode, stderr, stdout } = await ferryWithInput(['render', '--node', 'node-a', '-f', 'examples/cluster.yaml', '-f', '-'], { text: typos });
  t.is(exitCode, 0, stderr);
  t.regex(stdout, /^table ip ferry \{$/m);
  t.regex(stderr, /^ferry: warning: Service shop\/typo: spec\.ports\[0\]\.targetPrt: unknown field \(did you mean targetPort\?\)$/m);
  t.regex(stderr, /^ferry: warning: Service shop\/typo: spec\.externalTraficPolicy: unknown field \(did you mean externalTrafficPolicy\?\)$/m);
  t.regex(stderr, /^ferry: warning: Servce shop\/typo-kind: not read by ferry \(ignored; did you mean Service\?\)$/m);
  t.regex(stdout, /^\t+10\.96\.10\.90 \. tcp \. 80 : goto reject-chain,$/m, 'the Service with typos is still rendered');
});
