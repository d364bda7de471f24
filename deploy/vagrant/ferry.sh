#!/usr/bin/env bash
# Installs ferry from the synced folder into /opt/ferry and runs it as a systemd service that follows
# the cluster (deploy/systemd/ferry-sync.service, until the agent of issue #4 replaces it).
set -euo pipefail
if ! command -v node >/dev/null || ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  curl -fsSL https://deb.nodesource.com/setup_20.x | bash -
  apt-get install -y nodejs
fi
rsync -a --delete --exclude node_modules --exclude dist --exclude .git /vagrant/ /opt/ferry/
bash /opt/ferry/scripts/install.sh
install -d /etc/ferry
cp /vagrant/.vagrant-k3s/kubeconfig /etc/ferry/kubeconfig
[ -f /etc/ferry/backend ] || echo nftables > /etc/ferry/backend
echo "$NODE_NAME" > /etc/ferry/node
install -m 0644 /opt/ferry/deploy/systemd/ferry-sync.service /etc/systemd/system/ferry-sync.service
systemctl daemon-reload
systemctl enable --now ferry-sync.service
