import test from 'ava';
import { execa } from 'execa';
import { packageRoot } from '../controlplane/package-root.js';

// A partial sync keeps its map writer open between syncs (dataplane/ebpf/backend.ts); idle, the helper
// must not keep a finished process alive, and a command in flight must hold it until the reply.
test('kernel: ebpf an idle kept map writer lets the process end; a command in flight holds it until its reply', async (t) => {
  const script = `
    import { MapWriter } from './dataplane/ebpf/map-writer.ts';
    import { MAPS } from './dataplane/ebpf/layout.ts';
    const writer = await MapWriter.start();
    writer.keepIdle();
    // Not awaited: only the command itself keeps the process here.
    void writer.open(MAPS.groups, '/nonexistent/ferry-map').catch((error) => console.log('replied: ' + error.message));
  `;
  const result = await execa(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: packageRoot(), timeout: 60_000, reject: false });
  t.false(result.timedOut, 'the process ended by itself once the helper was idle');
  t.is(result.exitCode, 0, result.stderr);
  t.regex(result.stdout, /^replied: ferry-map-writer open groups \/nonexistent\/ferry-map: .*No such file or directory/);
});
