# The ferry agent image for deploy/kubernetes/ferry.yaml: Node.js LTS on Debian slim with the kernel
# tools ferry drives. Build: docker build -t ferry:0.1.0 .
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables nftables conntrack iproute2 util-linux \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/ferry
COPY package.json package-lock.json tsconfig.json ./
COPY bin bin
COPY controlplane controlplane
COPY dataplane dataplane
COPY templates templates
COPY e2e e2e
COPY test test
COPY bench bench
RUN npm ci --no-audit --no-fund && npm prune --omit=dev
ENTRYPOINT ["node", "/opt/ferry/bin/ferry.js"]
CMD ["agent"]
