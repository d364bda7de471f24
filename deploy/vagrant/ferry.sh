#!/usr/bin/env bash
# Installs ferry from the synced folder into /opt/ferry and runs `ferry agent` as the systemd service
# ferry.service (deploy/systemd/ferry.service) against the k3s API.
set -euo pipefail
if ! command -v node >/dev/null || ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  curl -fsSL https://deb.nodesource.com/setup_20.x | bash -
  apt-get install -y nodejs
fi
rsync -a --delete --exclude node_modules --exclude dist --exclude .git /vagrant/ /opt/ferry/
bash /opt/ferry/scripts/install.sh
install -d /etc/ferry
cp /vagrant/.vagrant-k3s/kubeconfig /etc/ferry/kubeconfig
cp /opt/ferry/deploy/systemd/kube-proxy.yaml /etc/ferry/kube-proxy.yaml
[ -f /etc/ferry/ferry.env ] || printf 'FERRY_NODE=%s\nFERRY_BACKEND=nftables\n' "$NODE_NAME" > /etc/ferry/ferry.env
install -m 0644 /opt/ferry/deploy/systemd/ferry.service /etc/systemd/system/ferry.service
systemctl daemon-reload
systemctl enable --now ferry.service
