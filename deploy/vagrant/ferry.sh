#!/usr/bin/env bash
# Installs ferry from the synced folder into /opt/ferry and runs `ferry agent` as the systemd service
# ferry.service (deploy/systemd/ferry.service).
# Its kubeconfig is the one k3s writes on every node for its own kube-proxy, also with
# --disable-kube-proxy (k3s pkg/agent/config: agent/kubeproxy.kubeconfig): the node's local API
# address (on agents, k3s's load balancer to the servers) and the system:kube-proxy client
# certificate, which k3s renews. ferry-rbac.yaml gives that identity ferry's ClusterRole.
set -euo pipefail
source "${FERRY_SRC:-/vagrant}/deploy/vagrant/common.sh"
: "${NODE_NAME:?}"
if ! command -v node >/dev/null || ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  curl -fsSL https://deb.nodesource.com/setup_20.x | bash -
  apt-get install -y nodejs
fi
rsync -a --delete --exclude node_modules --exclude dist --exclude .git "$FERRY_SRC/" /opt/ferry/
bash /opt/ferry/scripts/install.sh
kubeconfig=/var/lib/rancher/k3s/agent/kubeproxy.kubeconfig
for _ in $(seq 150); do [ -s "$kubeconfig" ] && break; sleep 2; done
[ -s "$kubeconfig" ] || { echo "ferry.sh: k3s wrote no $kubeconfig (is k3s running? journalctl -u k3s -u k3s-agent)" >&2; exit 1; }
install -d /etc/ferry
ln -sfn "$kubeconfig" /etc/ferry/kubeconfig
install -m 0644 /opt/ferry/deploy/systemd/kube-proxy.yaml /etc/ferry/kube-proxy.yaml
[ -f /etc/ferry/ferry.env ] || printf 'FERRY_NODE=%s\nFERRY_BACKEND=nftables\n' "$NODE_NAME" > /etc/ferry/ferry.env
install -m 0644 /opt/ferry/deploy/systemd/ferry.service /etc/systemd/system/ferry.service
systemctl daemon-reload
systemctl enable ferry.service
systemctl restart ferry.service
