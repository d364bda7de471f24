# Sourced by the Vagrant provisioners: where the synced repository is, and which NIC holds an address.
# FERRY_SRC: the repository as rsync put it in the VM (Vagrant's synced folder; tests point it elsewhere).
FERRY_SRC=${FERRY_SRC:-/vagrant}

# The interface that holds IPv4 address $1: Vagrant's private_network NIC, whatever the provider named it.
interface_of() {
  ip -o -4 addr show | awk -v address="$1" '{ split($4, a, "/"); if (a[1] == address) { print $2; exit } }'
}

# interface_of, or a message and exit 1.
require_interface_of() {
  local found
  found=$(interface_of "$1")
  if [ -z "$found" ]; then
    echo "$(basename "$0"): no interface holds $1 (the Vagrantfile's private_network address)" >&2
    exit 1
  fi
  echo "$found"
}
