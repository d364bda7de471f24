// A manifests directory as a live source: re-read on every change; a file that does not parse is
// reported and the last good view is kept, so a half-written file never empties the node's rules.
import { watch, type FSWatcher } from 'node:fs';
import type { Logger } from 'pino';
import { readManifests } from './manifests.js';
import type { ObjectSource } from './source.js';

// Editors and `kubectl get > file` write in several steps; wait for the burst to end.
const SETTLE_MS = 100;
// inotify misses changes in subdirectories and some rename sequences; a periodic re-read catches them.
const RESCAN_MS = 5000;

export class ManifestWatch implements ObjectSource {
  private current: unknown[] = [];
  private currentText = '';
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private rescan: NodeJS.Timeout | undefined;
  private reading: Promise<void> = Promise.resolve();

  constructor(private readonly directory: string, private readonly logger: Logger) {}

  async start(onChange: () => void): Promise<void> {
    this.current = await readManifests([this.directory]);
    this.currentText = JSON.stringify(this.current);
    const reread = () => {
      this.reading = this.reading.then(() => this.reread(onChange));
    };
    this.watcher = watch(this.directory, () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(reread, SETTLE_MS);
    });
    this.rescan = setInterval(reread, RESCAN_MS);
  }

  objects(): unknown[] {
    return this.current;
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    clearInterval(this.rescan);
    this.watcher?.close();
    await this.reading;
  }

  private async reread(onChange: () => void): Promise<void> {
    try {
      const objects = await readManifests([this.directory]);
      const text = JSON.stringify(objects);
      if (text === this.currentText) return;
      this.current = objects;
      this.currentText = text;
      onChange();
    } catch (error) {
      this.logger.error({ directory: this.directory, err: (error as Error).message }, 'manifests did not parse; keeping the last good state');
    }
  }
}
