import { access, constants, cp, mkdir, mkdtemp, readFile, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { packageRoot } from '../controlplane/package-root.js';
import { bpfWorkspace } from './helpers/bpf-workspace.js';

// The image cannot be built here (no Docker engine). This replays the Dockerfile's stages on the file
// system instead: each COPY copies, each RUN does what it stands for (`npm ci` from this checkout's
// node_modules, with --omit=dev only the production packages; `tsc` compiles exactly what the stage
// copied), and then ferry runs from the final stage's files. What the replay does not know, it refuses.
const root = packageRoot();

interface Instruction { keyword: string; args: string }
interface Stage { name: string | undefined; base: string; instructions: Instruction[] }

/** Dockerfile text → stages; joins continuation lines and drops comments. */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('#'));
  for (const line of lines) {
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (keyword.toUpperCase() === 'FROM') {
      const [base = '', as, name] = args.split(/\s+/);
      stages.push({ base, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else {
      stages.at(-1)!.instructions.push({ keyword: keyword.toUpperCase(), args });
    }
  }
  return stages;
}

const productionPackages = async () => {
  const { stdout } = await execa('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root });
  const paths = stdout.split('\n').filter((path) => path !== root).map((path) => relative(root, path));
  return paths.filter((path) => !paths.some((other) => other !== path && path.startsWith(`${other}/`)));
};

interface Replay { stages: Map<string, string>; final: string; workdir: string; entrypoint: string[]; cmd: string[]; aptPackages: string[] }

async function replay(stages: Stage[], scratch: string): Promise<Replay> {
  const roots = new Map<string, string>();
  let final = '';
  let workdir = '/';
  let entrypoint: string[] = [];
  let cmd: string[] = [];
  const aptPackages: string[] = [];
  for (const [index, stage] of stages.entries()) {
    const stageRoot = join(scratch, `stage-${index}`);
    await mkdir(stageRoot, { recursive: true });
    workdir = '/';
    for (const { keyword, args } of stage.instructions) {
      const here = join(stageRoot, workdir);
      if (keyword === 'WORKDIR') {
        workdir = args;
        await mkdir(join(stageRoot, workdir), { recursive: true });
      } else if (keyword === 'COPY') {
        const words = args.split(/\s+/);
        const from = words[0]!.startsWith('--from=') ? words.shift()!.slice('--from='.length) : undefined;
        const destination = words.pop()!;
        const target = destination.startsWith('/') ? join(stageRoot, destination) : join(here, destination);
        for (const source of words) {
          const origin = from === undefined ? join(root, source) : join(roots.get(from) ?? assertNever(`unknown stage ${from}`), source);
          const into = destination.endsWith('/') ? join(target, source.split('/').at(-1)!) : target;
          await mkdir(dirname(into), { recursive: true });
          await cp(origin, into, { recursive: true, verbatimSymlinks: true });
        }
      } else if (keyword === 'RUN') {
        if (/^npm ci\b/.test(args)) {
          if (!args.includes('--ignore-scripts')) throw new Error(`npm ci without --ignore-scripts runs \`prepare\`: ${args}`);
          if (args.includes('--omit=dev')) {
            for (const path of await productionPackages()) await cp(join(root, path), join(here, path), { recursive: true, verbatimSymlinks: true });
          } else {
            await symlink(join(root, 'node_modules'), join(here, 'node_modules'));
          }
        } else if (args === 'npx tsc -p tsconfig.json') {
          await execa(join(root, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], { cwd: here });
        } else if (args === 'node scripts/bundle.mjs') {
          await execa(process.execPath, ['scripts/bundle.mjs'], { cwd: here });
        } else if (/^(cc|clang|mkdir) [-\w./$() ]+$/.test(args)) {
          // A C or BPF build, run with this machine's compilers and libraries (install.sh installs the same packages).
          await execa('sh', ['-c', args], { cwd: here });
        } else if (args.startsWith('apt-get update')) {
          aptPackages.push(...(/apt-get install -y --no-install-recommends ([^&]+)/.exec(args)?.[1]?.trim().split(/\s+/) ?? []));
        } else {
          throw new Error(`the replay does not know this RUN: ${args}`);
        }
      } else if (keyword === 'ENTRYPOINT') {
        entrypoint = JSON.parse(args) as string[];
      } else if (keyword === 'CMD') {
        cmd = JSON.parse(args) as string[];
      } else {
        throw new Error(`the replay does not know ${keyword}`);
      }
    }
    if (stage.name) roots.set(stage.name, stageRoot);
    final = stageRoot;
  }
  return { stages: roots, final, workdir, entrypoint, cmd, aptPackages };
}

function assertNever(message: string): never {
  throw new Error(message);
}

async function listTree(directory: string, prefix = ''): Promise<string[]> {
  const entries = await readdir(directory, { withFileTypes: true });
  const names: string[] = [];
  for (const entry of entries) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    names.push(path);
    if (entry.isDirectory() && entry.name !== 'node_modules') names.push(...await listTree(join(directory, entry.name), path));
  }
  return names;
}

const replayed = (async () => {
  const scratch = await mkdtemp(join(tmpdir(), 'ferry-dockerfile-'));
  const stages = parseDockerfile(await readFile(join(root, 'Dockerfile'), 'utf8'));
  return { scratch, stages, result: await replay(stages, scratch) };
})();

test.after.always(async () => {
  await rm((await replayed).scratch, { recursive: true, force: true });
});

test('every stage starts from the same Node.js LTS image, and the build context leaves out what the stages make', async (t) => {
  const { stages } = await replayed;
  t.deepEqual(stages.map((stage) => [stage.name, stage.base]), [
    ['build', 'node:20-bookworm-slim'], ['native', 'node:20-bookworm-slim'], ['production-dependencies', 'node:20-bookworm-slim'], [undefined, 'node:20-bookworm-slim'],
  ]);
  const ignored = (await readFile(join(root, '.dockerignore'), 'utf8')).split('\n').filter((line) => line && !line.startsWith('#'));
  for (const path of ['node_modules', 'dist', '.git']) t.true(ignored.includes(path), path);
});

test('the image holds the compiled CLI, its templates and production dependencies, and no tests, sources or dev tools', async (t) => {
  const { result } = await replayed;
  const app = join(result.final, result.workdir);
  const tree = await listTree(app);
  for (const path of ['bin/ferry.js', 'package.json', 'templates', 'dist/cli/ferry.js', 'deploy/image/entrypoint.sh']) {
    t.true(tree.includes(path), path);
  }
  for (const path of tree) t.false(/^(test|e2e|bench|controlplane|dataplane|rules|scripts|dist\/(test|e2e|bench|controlplane|dataplane|rules))(\/|$)/.test(path), path);
  t.false(tree.some((path) => path.endsWith('.ts')), 'no TypeScript sources');
  const modules = await readdir(join(app, 'node_modules'));
  for (const dev of ['typescript', 'ava', 'eslint', 'tsx', 'fast-check', '@testcontainers']) t.false(modules.includes(dev), dev);
  for (const production of ['@kubernetes', 'commander', 'handlebars', 'execa', 'yaml']) t.true(modules.includes(production), production);
  for (const tool of ['iptables', 'nftables', 'conntrack', 'iproute2', 'util-linux', 'bpftool', 'libbpf1']) t.true(result.aptPackages.includes(tool), tool);
});

test('kernel: the image\'s entry point and files render the same rules as this checkout', async (t) => {
  const { result, scratch } = await replayed;
  t.deepEqual(result.entrypoint, ['/opt/ferry/deploy/image/entrypoint.sh']);
  t.deepEqual(result.cmd, ['agent']);
  const entrypoint = join(result.final, result.entrypoint[0]!);
  await access(entrypoint, constants.X_OK);
  const args = ['render', '--node', 'node-a', '-f', join(root, 'examples/cluster.yaml')];
  const expected = await execa(process.execPath, [join(root, 'bin/ferry.js'), ...args]);
  // In a network namespace of its own, so the detection reads no rules of this machine; links into scratch.
  const image = await execa('unshare', ['--net', '--', entrypoint, ...args], {
    env: { FERRY_HOME: join(result.final, result.workdir), FERRY_IPTABLES_DIR: join(scratch, 'links'), PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
    extendEnv: false, reject: false,
  });
  t.is(image.exitCode, 0, String(image.stderr));
  t.is(image.stdout, expected.stdout);
  t.regex(String(image.stderr), /ferry image: iptables mode nft/);
});

test('kernel: the image\'s ferry diff reads the kernel with the nft-digest it was built with, compiling nothing', async (t) => {
  const { result, scratch } = await replayed;
  await access(join(result.final, result.workdir, 'libexec/nft-digest'), constants.X_OK);
  const cache = await mkdtemp(join(scratch, 'cache-'));
  const entrypoint = join(result.final, result.entrypoint[0]!);
  const diff = await execa('unshare', ['--net', '--', entrypoint, 'diff', '--node', 'node-a', '-f', join(root, 'examples/cluster.yaml')], {
    env: { FERRY_HOME: join(result.final, result.workdir), FERRY_IPTABLES_DIR: join(scratch, 'links'), FERRY_CACHE_DIR: cache, PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
    extendEnv: false, reject: false,
  });
  // An empty namespace holds none of the desired rules: exit 1 and the diff, found by digests.
  t.is(diff.exitCode, 1, String(diff.stderr));
  t.regex(String(diff.stdout), /^\+\s*chain nat-prerouting \{/m);
  t.notRegex(String(diff.stderr), /could not be built/);
  t.deepEqual(await readdir(cache), [], 'nothing was compiled');
});

test('kernel: the image\'s eBPF backend runs the programs and map writer it was built with, compiling nothing', async (t) => {
  const { result, scratch } = await replayed;
  for (const file of ['sockets.bpf.o', 'packets.bpf.o', 'map-writer']) await access(join(result.final, result.workdir, 'libexec', file), constants.R_OK);
  const place = await bpfWorkspace(t);
  const cache = await mkdtemp(join(scratch, 'cache-'));
  const entrypoint = join(result.final, result.entrypoint[0]!);
  const flags = ['--node', 'node-a', '-f', join(root, 'examples/cluster.yaml'), '--backend', 'ebpf', '--cgroup-root', place.cgroup, '--bpf-root', place.pinDir];
  // clang is not on this PATH: a compile would fail, and the probe would name it.
  const env = { FERRY_HOME: join(result.final, result.workdir), FERRY_IPTABLES_DIR: join(scratch, 'links'), FERRY_CACHE_DIR: cache, FERRY_TEST_PLACEMENT_PREFIX: 'ferryk-', PATH: await pathWithout('clang') };
  const run = (args: string[]) => execa('unshare', ['--net', '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', entrypoint, ...args], { env, extendEnv: false, reject: false });
  const apply = await run(['apply', ...flags]);
  t.is(apply.exitCode, 0, String(apply.stderr));
  t.regex(String(apply.stdout), /ferry: applied ebpf rules for node-a/);
  const cleanup = await run(['cleanup', '--backend', 'ebpf', '--cgroup-root', place.cgroup, '--bpf-root', place.pinDir]);
  t.is(cleanup.exitCode, 0, String(cleanup.stderr));
  t.deepEqual(await readdir(cache), [], 'nothing was compiled');
});

/** The system PATH with a directory of links to every tool of /usr/bin and /usr/sbin but `tool`. */
async function pathWithout(tool: string): Promise<string> {
  const { scratch } = await replayed;
  const directory = await mkdtemp(join(scratch, 'path-'));
  for (const from of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    for (const name of await readdir(from).catch(() => [])) {
      if (name === tool || name.startsWith(`${tool}-`)) continue;
      await symlink(join(from, name), join(directory, name)).catch(() => undefined);
    }
  }
  return directory;
}
