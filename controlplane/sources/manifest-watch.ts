// A manifests directory as a live source: re-read on every change; a file that does not parse is
// reported and the last good view is kept, so a half-written file never empties the node's rules.
import { watch, type FSWatcher } from 'node:fs';
import type { Logger } from 'pino';
import { expandLists } from '../model/cluster-state.js';
import { readManifests } from './manifests.js';
import type { ObjectChange } from '../model/cluster-store.js';
import type { ObjectSource } from './source.js';

// Editors and `kubectl get > file` write in several steps; wait for the burst to end.
const SETTLE_MS = 100;
// inotify misses changes in subdirectories and some rename sequences; a periodic re-read catches them.
const RESCAN_MS = 5000;

export class ManifestWatch implements ObjectSource {
  private current: unknown[] = [];
  /**
   * Each current object as JSON: an object read again with the same text is the same object. Made at
   * the first re-read, not at the start, where it would delay the first sync (0.5 s at 50,000 Services).
   */
  private currentTexts: string[] | undefined;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private rescan: NodeJS.Timeout | undefined;
  private reading: Promise<void> = Promise.resolve();

  readonly description: string;

  constructor(private readonly directory: string, private readonly logger: Logger) {
    this.description = `the manifests in ${directory}`;
  }

  async start(onChange: (change?: ObjectChange) => void): Promise<void> {
    this.current = [...expandLists(await readManifests([this.directory]))];
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

  private async reread(onChange: (change?: ObjectChange) => void): Promise<void> {
    try {
      const objects = [...expandLists(await readManifests([this.directory]))];
      const texts = objects.map((object) => JSON.stringify(object));
      const currentTexts = (this.currentTexts ??= this.current.map((object) => JSON.stringify(object)));
      if (texts.length === currentTexts.length && texts.every((text, index) => text === currentTexts[index])) return;
      // Unchanged objects stay the objects they were, as an informer's do: the agent's store reads only
      // the others again, and a sync computes only the Services they belong to.
      const previous = new Map(currentTexts.map((text, index) => [text, this.current[index]]));
      this.current = objects.map((object, index) => previous.get(texts[index]!) ?? object);
      this.currentTexts = texts;
      onChange();
    } catch (error) {
      this.logger.error({ directory: this.directory, err: (error as Error).message }, 'manifests did not parse; keeping the last good state');
    }
  }
}
