#!/usr/bin/env bash
# Installs what ferry needs on a Debian/Ubuntu node: the kernel tools it drives, then its npm packages
# (npm ci also compiles the TypeScript through the prepare script). Run as root from the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (it installs Debian packages): sudo bash scripts/install.sh" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# iptables and nftables are the backends, conntrack the connection table tool, iproute2 and
# util-linux (unshare) build the throwaway network namespaces that checks and tests run in. The eBPF
# backend compiles its programs with clang (-target bpf, libbpf's headers), loads them with bpftool,
# and builds its map writer with gcc against libbpf. `ferry diff` builds its nftables reader (nft-digest)
# with gcc against libmnl and libcrypto.
apt-get install -y -qq --no-install-recommends iptables nftables conntrack iproute2 util-linux procps ca-certificates \
  clang llvm libbpf-dev bpftool gcc libc6-dev libmnl-dev libssl-dev >/dev/null

node -e 'const [major, minor] = process.versions.node.split(".").map(Number); if (major < 20 || (major === 20 && minor < 19)) { console.error(`install.sh: ferry needs Node.js >= 20.19, found ${process.versions.node}`); process.exit(1); }'

# Through sudo, the npm packages and the build belong to whoever owns the clone, not to root, so that
# `npx ferry` and `npm run test:unit` keep working for that user without sudo.
owner=$(stat -c %U .)
if [ -n "${SUDO_USER:-}" ] && [ "$owner" != root ] && [ "$owner" = "$SUDO_USER" ]; then
  sudo -u "$owner" -H npm ci --no-audit --no-fund
else
  npm ci --no-audit --no-fund
fi
echo "install.sh: ferry is installed; try: npx ferry render --node node-a -f examples/cluster.yaml"
