#!/usr/bin/env bash
# An external client: routes service, external and load-balancer addresses through node-a (as a
# router in front of a cluster would) and has Node.js for the e2e probe.
set -euo pipefail
source "${FERRY_SRC:-/vagrant}/deploy/vagrant/common.sh"
: "${SERVER_IP:?}" "${SERVER_IPV6:?}"
if ! command -v node >/dev/null; then
  curl -fsSL https://deb.nodesource.com/setup_20.x | bash -
  apt-get install -y nodejs
fi
mkdir -p /opt/ferry && rsync -a --delete --exclude node_modules --exclude dist --exclude .git "$FERRY_SRC/" /opt/ferry/
bash /opt/ferry/scripts/install.sh   # builds dist/e2e/probe.js
for cidr in 10.96.0.0/16 203.0.113.0/24 198.51.100.0/24; do ip route replace "$cidr" via "$SERVER_IP"; done
for cidr in fd00:96::/112 fd00:203::/64 fd00:198::/64; do ip -6 route replace "$cidr" via "$SERVER_IPV6"; done
