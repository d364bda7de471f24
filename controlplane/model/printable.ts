// Text from API objects and config files ends up in warnings and errors, on a terminal or in a log:
// control characters and bidirectional formatting characters are escaped there, so that a name holding
// U+202E cannot reorder the line it is printed on, nor a newline forge another line.
import type { ModelError } from './types.js';

// C0 and C1 controls and DEL (Cc), the bidi marks, embeddings, overrides and isolates (Bidi_Control),
// and the line and paragraph separators.
const UNPRINTABLE = /[\p{Cc}\p{Bidi_Control}\u2028\u2029]/gu;

/** The text with every such character written as `\u{XXXX}`. */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (character) => `\\u{${character.codePointAt(0)!.toString(16).padStart(4, '0')}}`);
}

/** A ModelError whose every part is printable. */
export function printableError(error: ModelError): ModelError {
  return { kind: printable(error.kind), object: printable(error.object), field: printable(error.field), message: printable(error.message) };
}
