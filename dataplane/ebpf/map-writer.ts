// The TypeScript side of ferry-map-writer (map-writer.c): one helper process, kept running, writes
// and reads pinned BPF maps in batches, so a sync of any size costs a few syscalls, not a process per element.
import { setImmediate } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { buildMapWriter } from './build.js';
import type { Codec, FrontendKey, Group, MapLayout, Slot, SlotKey } from './layout.js';

/** The helper refused a command: errno and its message (the map as it was, or with a prefix of an update written). */
export class MapWriterError extends Error {
  constructor(readonly command: string, readonly errno: number, message: string) {
    super(`ferry-map-writer ${command}: ${message}`);
  }
}

// cleanup: false, as for every ferry command: execa's exit hook re-raises SIGTERM (see runner.ts).
const HELPER_OPTIONS = { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', buffer: false, reject: false, cleanup: false } as const;

/** Encodes `value` into `bytes` at `offset`: in place where the codec can, else through a buffer of its own. */
function writeInto<T>(codec: Codec<T>, value: T, bytes: Buffer, offset: number): void {
  if (codec.write) codec.write(value, bytes, offset);
  else codec.encode(value).copy(bytes, offset);
}

/** What a table's frontends serve, as the helper sums it: their number and digest. */
export interface Served { count: number; digest: string }

/** A pinned map the writer has open (by `name`), with the layout its entries are encoded in. */
export interface OpenMap<K, V> {
  layout: MapLayout<K, V>;
  name: string;
  path: string;
  maxEntries: number;
}

/** A map that is not there (its program was never attached here): it reads as empty and takes no writes. */
export function closedMap<K, V>(layout: MapLayout<K, V>): Promise<OpenMap<K, V>> {
  return Promise.resolve({ layout, name: layout.name, path: '', maxEntries: 0 });
}

/** Writes and reads pinned maps through one long-running helper; commands run one at a time, in order. */
export class MapWriter {
  private buffered = '';
  private lines: string[] = [];
  private wake: (() => void) | undefined;
  private exited: string | undefined;
  /** The answers still to come, in the order the commands were sent. */
  private queue: Promise<unknown> = Promise.resolve();
  private pending = 0;
  private idle = false;
  private sequences = 0;

  private constructor(private readonly child: ResultPromise<typeof HELPER_OPTIONS>) {
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      const parts = (this.buffered + chunk).split('\n');
      this.buffered = parts.pop()!;
      for (const part of parts) this.lines.push(part);
      this.wake?.();
    });
    // A dead helper's EPIPE: reported to the waiting command by take(), not as an unhandled error.
    child.stdin.on('error', () => undefined);
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += String(chunk)));
    void child.then((result) => {
      this.exited = `exited ${result.exitCode ?? result.signal}${stderr ? `: ${stderr.trim()}` : ''}`;
      this.wake?.();
    });
  }

  /** Builds the helper if its cached binary is missing (or takes `binary`) and starts it. */
  static async start(options: { binary?: string; cacheDir?: string } = {}): Promise<MapWriter> {
    const binary = options.binary ?? (await buildMapWriter({ cacheDir: options.cacheDir }));
    return new MapWriter(execa(binary, [], HELPER_OPTIONS));
  }

  /**
   * Opens a pinned map, or for a table layout the table its pinned array of maps holds (an empty one
   * put there first if it holds none); fails unless its key and value sizes are the layout's.
   */
  open<K, V>(layout: MapLayout<K, V>, path: string): Promise<OpenMap<K, V>> {
    const { name, key, value, table } = layout;
    const head = table ? `table ${name} ${path} ${key.size} ${value.size} ${table.maxEntries}` : `open ${name} ${path}`;
    return this.command(head, [], async (reply) => {
      const [keySize, valueSize, maxEntries] = reply.map(Number);
      if (keySize !== key.size || valueSize !== value.size) {
        throw new MapWriterError(`open ${name}`, 0, `${path} has key/value sizes ${keySize}/${valueSize}, ferry's layout ${key.size}/${value.size}: program and ferry are of different versions`);
      }
      return { layout, name, path, maxEntries: maxEntries! };
    });
  }

  /** Binds the map pinned at `mapPath` to the program pinned at `programPath`: the map lives while the program does. */
  bind(programPath: string, mapPath: string): Promise<void> {
    return this.command(`bind ${programPath} ${mapPath}`, [], async () => undefined);
  }

  /** A fresh, empty table like `table`, to fill before `install` puts it in its place. */
  stage<K, V>(table: OpenMap<K, V>): Promise<OpenMap<K, V>> {
    return this.command(`stage ${table.name}`, [], async () => ({ ...table, name: `${table.name}.next` }));
  }

  /** Puts the staged table in its array (one write: programs see the old table or this one); `table` is this one afterwards. */
  install<K, V>(table: OpenMap<K, V>): Promise<void> {
    return this.command(`install ${table.name}`, [], async () => undefined);
  }

  /** Creates or replaces the entries (one BPF_MAP_UPDATE_BATCH), sent as raw bytes; the number written. */
  update<K, V>(map: OpenMap<K, V>, entries: Iterable<readonly [K, V]>, sequence?: Sequence): Promise<number> {
    const list = [...entries];
    const { key, value } = map.layout;
    const size = key.size + value.size;
    const bytes = Buffer.alloc(list.length * size);
    list.forEach(([k, v], index) => {
      writeInto(key, k, bytes, index * size);
      writeInto(value, v, bytes, index * size + key.size);
    });
    return this.updateEncoded(map, list.length, bytes, sequence);
  }

  /** `update` of `count` entries encoded already (each key then value, in the map's layout). */
  updateEncoded<K, V>(map: OpenMap<K, V>, count: number, bytes: Buffer, sequence?: Sequence): Promise<number> {
    return this.command(`write ${map.name} ${count} ${bytes.length}`, bytes, async () => count, sequence);
  }

  /** Deletes the keys (one BPF_MAP_DELETE_BATCH); absent keys are not an error. */
  delete<K, V>(map: OpenMap<K, V>, keys: Iterable<K>, sequence?: Sequence): Promise<number> {
    const records = [...keys].map((key) => map.layout.key.encode(key).toString('hex'));
    return this.command(`delete ${map.name} ${records.length}`, records, async () => records.length, sequence);
  }

  /**
   * Writes that must land in the order given: each is encoded and sent when asked for (so the helper
   * writes one while the next is encoded), and none runs after one that failed.
   */
  inOrder(): WriteSequence {
    this.sequences += 1;
    return new WriteSequence(this, { id: this.sequences });
  }

  /** Every entry of the map, decoded (BPF_MAP_LOOKUP_BATCH). */
  dump<K, V>(map: OpenMap<K, V>): Promise<Array<[K, V]>> {
    if (map.path === '') return Promise.resolve([]);
    return this.command(`dump ${map.name}`, [], async (reply) => {
      const lines = await this.take(Number(reply[0]));
      // Every key and every value decoded from hex at once (two Buffer.from per line cost a third of a dump).
      const { key, value } = map.layout;
      const keys = Buffer.from(lines.map((line) => line.slice(0, key.size * 2)).join(''), 'hex');
      const values = Buffer.from(lines.map((line) => line.slice(key.size * 2 + 1)).join(''), 'hex');
      if (keys.length !== lines.length * key.size || values.length !== lines.length * value.size) throw new MapWriterError(`dump ${map.name}`, 0, 'the helper printed entries of another size');
      return lines.map((_, index) => [
        key.decode(keys.subarray(index * key.size, (index + 1) * key.size)),
        value.decode(values.subarray(index * value.size, (index + 1) * value.size)),
      ]);
    });
  }

  /**
   * How many groups and slots there are, and what each table's frontends serve through them (digest.ts
   * servedDigest, `groupWords` the value words holding group ids), summed by the helper: nothing is
   * printed per entry. A table that is not there serves nothing.
   */
  served(groups: OpenMap<number, Group>, slots: OpenMap<SlotKey, Slot>, tables: Array<[OpenMap<FrontendKey, unknown>, readonly number[]]>): Promise<{ groups: number; slots: number; tables: Served[] }> {
    const open = tables.filter(([table]) => table.path !== '');
    const head = `served ${groups.name} ${slots.name} ${open.map(([table, words]) => `${table.name}:${words.join(',')}`).join(' ')}`;
    return this.command(head, [], async ([groupCount, slotCount, ...sums]) => {
      const found = new Map(open.map(([table], index) => [table, { count: Number(sums[2 * index]), digest: sums[2 * index + 1]! }]));
      return { groups: Number(groupCount), slots: Number(slotCount), tables: tables.map(([table]) => found.get(table) ?? { count: 0, digest: '0000000000000000' }) };
    });
  }

  /** Ends the helper (its standard input) and waits for it. */
  async close(): Promise<void> {
    // Its exit must hold the event loop until it is seen, idle or not.
    this.idle = false;
    this.hold(true);
    this.child.stdin.end();
    await this.child;
  }

  /**
   * Lets the process exit while the helper idles (an agent keeps one open between syncs): only a
   * command in flight holds the event loop, so that neither an idle helper keeps a finished process
   * alive nor a pending reply is cut short.
   */
  keepIdle(): void {
    this.idle = true;
    if (this.pending === 0) this.hold(false);
  }

  private hold(on: boolean): void {
    for (const handle of [this.child, this.child.stdin, this.child.stdout, this.child.stderr] as Array<{ ref?(): void; unref?(): void }>) {
      if (on) handle.ref?.();
      else handle.unref?.();
    }
  }

  /**
   * Sends `head` and `records` at once, and takes the answer once every command sent before has its
   * own. A command of a sequence runs only if none of the sequence failed before it: the helper skips
   * it (map-writer.c `in`), or it is not sent when the failure is known already.
   */
  private command<T>(head: string, records: string[] | Buffer, onOk: (reply: string[]) => Promise<T>, sequence?: Sequence): Promise<T> {
    if (sequence?.failure !== undefined) return Promise.reject(sequence.failure);
    const line = `${sequence ? `in ${sequence.id} ` : ''}${head}\n`;
    if (Buffer.isBuffer(records)) this.child.stdin.write(Buffer.concat([Buffer.from(line), records]));
    else this.child.stdin.write(records.length ? `${line}${records.join('\n')}\n` : line);
    const answer = async () => {
      const [reply] = await this.take(1);
      const [status, ...rest] = reply!.split(' ');
      if (status === 'skipped') throw sequence?.failure ?? new MapWriterError(head, 0, 'skipped after a failed write');
      if (status !== 'ok') throw new MapWriterError(head, Number(rest[0]), rest.slice(1).join(' '));
      return onOk(rest);
    };
    this.pending += 1;
    if (this.idle) this.hold(true);
    const result = this.queue.then(answer, answer).catch((error: unknown) => {
      if (sequence && sequence.failure === undefined) sequence.failure = error;
      throw error;
    }).finally(() => {
      this.pending -= 1;
      if (this.idle && this.pending === 0) this.hold(false);
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async take(count: number): Promise<string[]> {
    while (this.lines.length < count) {
      if (this.exited) throw new MapWriterError('read', 0, `the helper ${this.exited}`);
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
    return this.lines.splice(0, count);
  }
}

/** What a sequence of writes shares: its number for the helper, and its first failure, after which nothing more of it runs. */
interface Sequence {
  id: number;
  failure?: unknown;
}

// A batch's bytes: a write that fits the socket's buffer goes to the helper at once; the rest of a
// bigger one would wait for the event loop, which the encoding of the next batches keeps busy.
const BATCH_BYTES = 128 * 1024;

/** MapWriter.inOrder's writes; `done` gives the entries written and deleted, or the first failure. */
export class WriteSequence {
  private readonly sent: Array<Promise<{ written: number; deleted: number }>> = [];

  constructor(private readonly writer: MapWriter, private readonly sequence: Sequence) {}

  /** Entries per batch for `map`: what the agent's end of the helper's socket (~200 KB) takes at once. */
  static batchOf<K, V>(map: OpenMap<K, V>): number {
    return Math.max(1, Math.floor(BATCH_BYTES / (map.layout.key.size + map.layout.value.size)));
  }

  update<K, V>(map: OpenMap<K, V>, entries: Array<readonly [K, V]>): void {
    if (!entries.length) return;
    const batch = WriteSequence.batchOf(map);
    for (let start = 0; start < entries.length; start += batch) {
      this.track(this.writer.update(map, entries.slice(start, start + batch), this.sequence).then((written) => ({ written, deleted: 0 })));
    }
  }

  delete<K, V>(map: OpenMap<K, V>, keys: K[]): void {
    if (keys.length) this.track(this.writer.delete(map, keys, this.sequence).then((deleted) => ({ written: 0, deleted })));
  }

  /**
   * Entries of `map` encoded as they are added, sent a batch at a time; `flush` sends the last one.
   * `pause` lets the event loop pass the batches sent since the last pause to the helper's socket
   * (beyond its buffer they wait in this process until the loop turns): the helper then writes them
   * while the next are encoded, rather than all of them after the encoding.
   */
  encoder<K, V>(map: OpenMap<K, V>): { add(key: K, value: V): void; flush(): void; pause(): Promise<void> } {
    const { key: keyCodec, value: valueCodec } = map.layout;
    const size = keyCodec.size + valueCodec.size;
    const batch = WriteSequence.batchOf(map);
    let bytes = Buffer.alloc(batch * size);
    let count = 0;
    let unsent = false;
    const flush = () => {
      if (count === 0) return;
      unsent = true;
      this.track(this.writer.updateEncoded(map, count, bytes.subarray(0, count * size), this.sequence).then((written) => ({ written, deleted: 0 })));
      bytes = Buffer.alloc(batch * size);
      count = 0;
    };
    return {
      add: (key, value) => {
        writeInto(keyCodec, key, bytes, count * size);
        writeInto(valueCodec, value, bytes, count * size + keyCodec.size);
        count += 1;
        if (count === batch) flush();
      },
      flush,
      pause: async () => {
        if (!unsent) return;
        unsent = false;
        await setImmediate();
      },
    };
  }

  private track(sent: Promise<{ written: number; deleted: number }>): void {
    // Told by done(), not as an unhandled rejection before it is asked for.
    sent.catch(() => undefined);
    this.sent.push(sent);
  }

  async done(): Promise<{ written: number; deleted: number }> {
    const counts = await Promise.all(this.sent);
    return counts.reduce((sum, count) => ({ written: sum.written + count.written, deleted: sum.deleted + count.deleted }), { written: 0, deleted: 0 });
  }
}
