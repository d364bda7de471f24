# The ferry agent image for deploy/kubernetes/ferry.yaml: docker build -t ferry:0.1.0 .
# Four stages: the TypeScript is compiled and bundled (dist/cli) with the dev dependencies, ferry's C helpers and BPF programs
# with gcc and clang, the production dependencies are installed on their own, and the image gets the
# compiled CLI, helpers and programs, its templates and those dependencies only (no tests, benchmarks,
# e2e harness, compiler or sources). test/dockerfile.test.ts replays these steps without Docker.

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
# --ignore-scripts: `prepare` would compile before the sources are here.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY controlplane controlplane
COPY dataplane dataplane
COPY rules rules
COPY scripts/bundle.mjs scripts/
RUN npx tsc -p tsconfig.json
RUN node scripts/bundle.mjs

FROM node:20-bookworm-slim AS native
WORKDIR /src
# What ferry compiles on a node, compiled here (the image has no compiler) into libexec/, where ferry
# looks first: ferry diff's nftables reader, and the eBPF backend's programs and map writer. The BPF
# objects need no kernel headers of the node (UAPI headers only; the kfuncs are matched at load).
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev libmnl-dev libssl-dev clang llvm libbpf-dev \
 && rm -rf /var/lib/apt/lists/*
COPY dataplane/nftables/digest.c dataplane/ebpf/map-writer.c ./
COPY templates/ebpf ebpf
RUN mkdir libexec
RUN cc -O2 -o libexec/nft-digest digest.c -lmnl -lcrypto
RUN cc -O2 -o libexec/map-writer map-writer.c -lbpf
RUN clang -O2 -g -target bpf -idirafter /usr/include/$(gcc -dumpmachine) -c ebpf/sockets.bpf.c -o libexec/sockets.bpf.o
RUN clang -O2 -g -target bpf -idirafter /usr/include/$(gcc -dumpmachine) -c ebpf/packets.bpf.c -o libexec/packets.bpf.o

FROM node:20-bookworm-slim AS production-dependencies
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:20-bookworm-slim
# iptables brings both variants (iptables-legacy, iptables-nft); the entry point picks the node's.
# nftables and conntrack are the other tools ferry drives; iproute2 and util-linux (unshare) make the
# throwaway network namespaces of the start-up comparison and the iptables check; libssl3 (with libmnl0,
# which nftables brings) is what nft-digest links against. The eBPF backend loads and attaches its
# programs with bpftool (and tc, of iproute2); its map writer links against libbpf1.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables nftables conntrack iproute2 util-linux libssl3 bpftool libbpf1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/ferry
COPY package.json ./
COPY bin bin
COPY templates templates
COPY --from=production-dependencies /src/node_modules node_modules
COPY --from=build /src/dist/cli dist/cli
COPY --from=native /src/libexec libexec
COPY deploy/image deploy/image
# Runs as root. iptables, nft, conntrack and unshare need CAP_NET_ADMIN, CAP_NET_RAW and CAP_SYS_ADMIN,
# and the xtables lock (/run/xtables.lock) belongs to root on the host. Kubernetes gives added capabilities
# to a non-root user only through file capabilities on every binary (it sets no ambient capabilities), and
# file capabilities on `node` would give them to any script it runs. So: uid 0, and the DaemonSet drops
# every capability but those three and keeps the root filesystem read-only (kube-proxy runs privileged).
ENTRYPOINT ["/opt/ferry/deploy/image/entrypoint.sh"]
CMD ["agent"]
