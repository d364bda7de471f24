#!/usr/bin/env bash
# Installs k3s without its kube-proxy (ferry replaces it), dual-stack, on the e2e address plan.
# Every VM gets the same pre-shared K3S_TOKEN, made on the host by the Vagrantfile: the synced folder
# is rsync (host to guest only), so no VM can read what another one wrote.
set -euo pipefail
source "${FERRY_SRC:-/vagrant}/deploy/vagrant/common.sh"
: "${K3S_TOKEN:?the Vagrantfile passes the cluster token}" "${ROLE:?server or agent}" "${NODE_IPV4:?}" "${NODE_IPV6:?}" "${SERVER_IP:?}"
iface=$(require_interface_of "$NODE_IPV4")
common=(--node-ip "${NODE_IPV4},${NODE_IPV6}" --flannel-iface "$iface")
export K3S_TOKEN INSTALL_K3S_CHANNEL="${K3S_CHANNEL:-stable}"
if [ "$ROLE" = server ]; then
  # ferry's ClusterRole for the identity of the kubeconfig ferry uses (k3s's kube-proxy one, see
  # ferry.sh); k3s applies every file in this directory when it starts.
  install -D -m 0644 "$FERRY_SRC/deploy/vagrant/ferry-rbac.yaml" /var/lib/rancher/k3s/server/manifests/ferry-rbac.yaml
  curl -sfL https://get.k3s.io | INSTALL_K3S_EXEC=server sh -s - "${common[@]}" \
    --disable-kube-proxy --disable traefik --disable servicelb --flannel-backend host-gw \
    --cluster-cidr 10.244.0.0/16,fd00:244::/56 --service-cidr 10.96.0.0/16,fd00:96::/112 \
    --write-kubeconfig-mode 644
else
  # The installer returns once k3s-agent runs, which waits for the server if it is not up yet.
  curl -sfL https://get.k3s.io | K3S_URL="https://${SERVER_IP}:6443" sh -s - agent "${common[@]}"
fi
