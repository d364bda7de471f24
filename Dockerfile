# The ferry agent image for deploy/kubernetes/ferry.yaml: docker build -t ferry:0.1.0 .
# Four stages: the TypeScript is compiled with the dev dependencies, nft-digest (C) with gcc, the
# production dependencies are installed on their own, and the image gets the compiled CLI and helper,
# its templates and those dependencies only (no tests, benchmarks, e2e harness, compiler or sources). test/dockerfile.test.ts replays these steps
# without Docker.

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
# --ignore-scripts: `prepare` would compile before the sources are here.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY controlplane controlplane
COPY dataplane dataplane
COPY rules rules
RUN npx tsc -p tsconfig.json

FROM node:20-bookworm-slim AS native
WORKDIR /src
# ferry diff's nftables reader; the image has no compiler, so it is compiled here.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev libmnl-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
COPY dataplane/nftables/digest.c ./
RUN cc -O2 -o nft-digest digest.c -lmnl -lcrypto

FROM node:20-bookworm-slim AS production-dependencies
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:20-bookworm-slim
# iptables brings both variants (iptables-legacy, iptables-nft); the entry point picks the node's.
# nftables and conntrack are the other tools ferry drives; iproute2 and util-linux (unshare) make the
# throwaway network namespaces of the start-up comparison and the iptables check; libssl3 (with libmnl0,
# which nftables brings) is what nft-digest links against.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables nftables conntrack iproute2 util-linux libssl3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/ferry
COPY package.json ./
COPY bin bin
COPY templates templates
COPY --from=production-dependencies /src/node_modules node_modules
COPY --from=build /src/dist/controlplane dist/controlplane
COPY --from=build /src/dist/dataplane dist/dataplane
COPY --from=build /src/dist/rules dist/rules
COPY --from=native /src/nft-digest libexec/nft-digest
COPY deploy/image deploy/image
# Runs as root. iptables, nft, conntrack and unshare need CAP_NET_ADMIN, CAP_NET_RAW and CAP_SYS_ADMIN,
# and the xtables lock (/run/xtables.lock) belongs to root on the host. Kubernetes gives added capabilities
# to a non-root user only through file capabilities on every binary (it sets no ambient capabilities), and
# file capabilities on `node` would give them to any script it runs. So: uid 0, and the DaemonSet drops
# every capability but those three and keeps the root filesystem read-only (kube-proxy runs privileged).
ENTRYPOINT ["/opt/ferry/deploy/image/entrypoint.sh"]
CMD ["agent"]
