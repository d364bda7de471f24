#!/usr/bin/env bash
# Installs k3s without kube-proxy (ferry replaces it), dual-stack, with the e2e address plan.
# The server writes its join token and an admin kubeconfig to /vagrant/.vagrant-k3s for the others.
set -euo pipefail
shared=/vagrant/.vagrant-k3s
mkdir -p "$shared"
common=(--node-ip "${NODE_IPV4},${NODE_IPV6}" --flannel-iface eth1)
if [ "$ROLE" = server ]; then
  curl -sfL https://get.k3s.io | INSTALL_K3S_EXEC="server" sh -s - "${common[@]}" \
    --disable-kube-proxy --disable traefik --disable servicelb --flannel-backend host-gw \
    --cluster-cidr 10.244.0.0/16,fd00:244::/56 --service-cidr 10.96.0.0/16,fd00:96::/112 \
    --write-kubeconfig-mode 644
  until [ -s /var/lib/rancher/k3s/server/node-token ]; do sleep 1; done
  cp /var/lib/rancher/k3s/server/node-token "$shared/token"
  sed "s/127.0.0.1/${SERVER_IP}/" /etc/rancher/k3s/k3s.yaml > "$shared/kubeconfig"
else
  until [ -s "$shared/token" ]; do sleep 2; done
  curl -sfL https://get.k3s.io | K3S_URL="https://${SERVER_IP}:6443" K3S_TOKEN="$(cat "$shared/token")" sh -s - agent "${common[@]}"
fi
