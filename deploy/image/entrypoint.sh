#!/bin/sh
# The image's entry point: point iptables at the variant this node uses (iptables-mode.sh), then run
# ferry with the container's arguments (`agent ...`, `cleanup --kube-proxy`, ...).
#   FERRY_IPTABLES_DIR  where the iptables links go (default /usr/local/sbin: first on the PATH that
#                       ferry runs its commands with; the DaemonSet mounts an emptyDir there, so the
#                       root filesystem can stay read-only)
#   FERRY_IPTABLES_MODE legacy or nft, to skip the detection
#   FERRY_HOME          where ferry is installed (default /opt/ferry)
set -eu
here=$(dirname "$0")
dir=${FERRY_IPTABLES_DIR:-/usr/local/sbin}
mode=$("$here/iptables-mode.sh" "$dir")
echo "ferry image: iptables mode $mode ($dir/iptables -> $(readlink "$dir/iptables"))" >&2
exec node --max-semi-space-size=8 "${FERRY_HOME:-/opt/ferry}/bin/ferry.js" "$@"
