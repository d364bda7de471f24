#!/usr/bin/env bash
# Puts this machine's IPv6 address of the e2e plan on the NIC that holds its IPv4 address. A second
# private_network in the Vagrantfile would be a second NIC (IPv4 on eth1, IPv6 on eth2), and flannel's
# host-gw routes and the external clients' routes need both families on the one link they use.
# A oneshot unit sets it at every boot, before k3s starts.
set -euo pipefail
source "${FERRY_SRC:-/vagrant}/deploy/vagrant/common.sh"
iface=$(require_interface_of "$NODE_IPV4")
cat > /etc/systemd/system/ferry-e2e-ipv6.service <<UNIT
[Unit]
Description=IPv6 address ${NODE_IPV6}/64 of the ferry e2e plan on ${iface}
After=network-online.target
Wants=network-online.target
Before=k3s.service k3s-agent.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/sysctl -w net.ipv6.conf.${iface}.disable_ipv6=0
# nodad: usable at once (duplicate address detection would hold it tentative for a second or more).
ExecStart=/usr/sbin/ip -6 addr replace ${NODE_IPV6}/64 dev ${iface} nodad

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable ferry-e2e-ipv6.service
systemctl restart ferry-e2e-ipv6.service
