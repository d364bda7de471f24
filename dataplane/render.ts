// render: NodeRules to a backend's rules, by the backend's renderer (backends.ts).
import type { NodeRules } from '../rules/node-rules.js';
import type { BackendOptions, RenderedRules, RenderUpdate } from './backend.js';
import type { BackendName } from './backend-names.js';
import { BACKENDS } from './backends.js';

export type { BackendOptions, RenderedRules, RenderUpdate };

/**
 * Renders node rules for a backend; pure: the same rules give the same result. With `update` (the
 * rendering before and the ports changed since) the result is the same, reached by rendering less.
 */
export function render(rules: NodeRules, backend: BackendName, options?: BackendOptions, update?: RenderUpdate): RenderedRules {
  return BACKENDS[backend].render(rules, options, update);
}

/** The whole rendered output as one text, as `ferry render` prints it. */
export function renderedText(rendered: RenderedRules): string {
  return rendered.texts.map((part) => part.text).join('\n');
}
