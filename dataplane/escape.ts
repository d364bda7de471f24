// One escaping helper per syntax: every name or comment that reaches rule text passes through one.

const COMMENT_UNSAFE = /[^A-Za-z0-9 ./:_=,+>[\]-]/g;
const IDENTIFIER_UNSAFE = /[^A-Za-z0-9/_.-]/g;

/**
 * Text for a double-quoted comment in nft or iptables-restore input. Quotes, backslashes and line
 * breaks could end the comment or the rule, so everything outside a small safe set becomes '_'; the
 * length stays under nft's 128-byte user-data limit (iptables allows 256).
 */
export function ruleComment(text: string): string {
  return text.replace(COMMENT_UNSAFE, '_').slice(0, 120);
}

/** A readable suffix for an nft chain name: only identifier characters nft accepts unquoted. */
export function nftIdentifier(text: string): string {
  return text.replace(IDENTIFIER_UNSAFE, '_').slice(0, 180);
}
