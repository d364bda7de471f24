#!/usr/bin/env bash
# Keeps this node's rules in step with the cluster by polling the API with kubectl and running
# `ferry apply` when the objects change. A stopgap for VMs until `ferry agent` (informers) exists.
set -uo pipefail
node_name=$(cat /etc/ferry/node)
backend=$(cat /etc/ferry/backend)
state=/run/ferry
mkdir -p "$state"
export KUBECONFIG=/etc/ferry/kubeconfig
kubectl=(k3s kubectl)
while true; do
  if "${kubectl[@]}" get services,endpointslices,nodes,servicecidrs -A -o yaml > "$state/cluster.new.yaml" 2> "$state/kubectl.err"; then
    if ! cmp -s "$state/cluster.new.yaml" "$state/cluster.yaml"; then
      mv "$state/cluster.new.yaml" "$state/cluster.yaml"
      node /opt/ferry/bin/ferry.js apply --node "$node_name" --backend "$backend" -f "$state/cluster.yaml" \
        --config /opt/ferry/deploy/systemd/kube-proxy.yaml
    fi
  else
    # The API is unreachable: keep the rules we have (never flush on disconnect).
    echo "ferry-sync: $(cat "$state/kubectl.err")" >&2
  fi
  sleep 1
done
