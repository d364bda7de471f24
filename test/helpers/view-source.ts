// A source of whole views whose objects the test sets, as a manifests directory gives them: `change()`
// tells the agent that the view changed.
import type { ObjectSource } from '../../controlplane/sources/source.js';

export class ViewSource implements ObjectSource {
  private onChange: () => void = () => {};
  constructor(public current: unknown[]) {}
  async start(onChange: () => void) {
    this.onChange = onChange;
  }
  objects() {
    return this.current;
  }
  async stop() {}
  change(objects: unknown[]) {
    this.current = objects;
    this.onChange();
  }
}
