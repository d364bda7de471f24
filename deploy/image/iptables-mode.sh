#!/bin/sh
# Which iptables the node uses, legacy or nft, decided as kube-proxy's image decides it
# (kubernetes-sigs/iptables-wrappers): both variants can hold rules on the same kernel, and a proxy
# that writes to the other one than the kubelet and the CNI plugin breaks the node without an error.
#
#   iptables-mode.sh [DIR]   prints "legacy" or "nft"; with DIR, points DIR/iptables, DIR/iptables-save,
#                            DIR/iptables-restore and the ip6tables ones at that variant (symbolic links),
#                            so that a DIR early on PATH selects it without update-alternatives (which
#                            writes /etc and needs a writable root filesystem).
#   FERRY_IPTABLES_MODE=legacy|nft skips the detection.
#
# The order, first match wins:
#   1. the kubelet's hint chains (KUBE-IPTABLES-HINT, KUBE-KUBELET-CANARY in mangle): the kubelet runs
#      on the host with the host's iptables, so its choice is the node's;
#   2. more Service-proxy chains (KUBE-*, FERRY-*: kube-proxy or an earlier ferry) in one variant;
#   3. more rules in legacy than in nft, else nft (also on an empty node: nft is Debian's default).
# Only *-save commands run. legacy-save is never given "-t", which would make the kernel create the table.
set -eu

# All rules of both families in one variant; a missing table, module or command counts as no rules.
dump() {
  variant=$1; shift
  { "iptables-$variant-save" "$@" || true; "ip6tables-$variant-save" "$@" || true; } 2>/dev/null
}
count() {
  grep -cE "$1" || true
}
available() {
  command -v "iptables-$1-save" >/dev/null 2>&1
}

detect() {
  if ! available legacy; then echo nft; return; fi
  if ! available nft; then echo legacy; return; fi
  hints='^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY) '
  if [ "$(dump nft -t mangle | count "$hints")" -ne 0 ]; then echo nft; return; fi
  legacy=$(dump legacy)
  if [ "$(printf '%s\n' "$legacy" | count "$hints")" -ne 0 ]; then echo legacy; return; fi
  nft=$(dump nft)
  chains='^:(KUBE|FERRY)-'
  legacy_chains=$(printf '%s\n' "$legacy" | count "$chains")
  nft_chains=$(printf '%s\n' "$nft" | count "$chains")
  if [ "$legacy_chains" -gt "$nft_chains" ]; then echo legacy; return; fi
  if [ "$nft_chains" -gt "$legacy_chains" ]; then echo nft; return; fi
  if [ "$(printf '%s\n' "$legacy" | count '^-')" -gt "$(printf '%s\n' "$nft" | count '^-')" ]; then echo legacy; else echo nft; fi
}

case "${FERRY_IPTABLES_MODE:-}" in
  legacy | nft) mode=$FERRY_IPTABLES_MODE ;;
  '') mode=$(detect) ;;
  *) echo "iptables-mode.sh: FERRY_IPTABLES_MODE must be legacy or nft, got '$FERRY_IPTABLES_MODE'" >&2; exit 2 ;;
esac

if [ $# -gt 0 ]; then
  dir=$1
  mkdir -p "$dir"
  for name in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    base=${name%%-*}
    # iptables-legacy-save etc.: links to xtables-*-multi, which dispatches on the name it was run as,
    # so DIR/iptables-save runs the save command of the chosen variant.
    target=$(command -v "$base-$mode${name#"$base"}") || { echo "iptables-mode.sh: $base-$mode${name#"$base"} is not installed" >&2; exit 1; }
    ln -sfn "$target" "$dir/$name"
  done
fi
echo "$mode"
