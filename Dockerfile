# Berth's container image, laid out like registry:2 so existing compose files and Kubernetes manifests
# work by swapping the image: config at /etc/docker/registry/config.yml (deploy/config.yml), data in the
# /var/lib/registry volume, port 5000, REGISTRY_* environment overrides.
#
#   docker build -t berth .
#   docker run -d -p 5000:5000 --stop-timeout 30 -v berth-data:/var/lib/registry -e REGISTRY_HTTP_SECRET=… berth
#
# NODE_IMAGE is the base of both stages (any Debian-based Node 20+ image with npm and a uid 1000); a
# mirror or an offline copy can be given with --build-arg NODE_IMAGE=… (test/container-image.test.ts
# does). deploy/README.md explains the choices below.
ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: type-check and bundle the server, keep only the production dependencies, lay out the runtime files ----
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency needs an install script (classic-level loads its prebuilt binary).
RUN npm ci --ignore-scripts --no-audit --no-fund
# The rest of the context, which .dockerignore limits to the tsconfigs, src/, the two build scripts
# (scripts/build-server.ts bundles the server into dist/, scripts/build-ui.ts the web UI from web/ into
# dist/ui/; `npm run build` runs both) and two deploy/ files.
COPY . .
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && mkdir -p /out/opt/berth /out/etc/docker/registry \
 && cp -r package.json dist node_modules deploy/healthcheck.mjs /out/opt/berth/ \
 && cp deploy/config.yml /out/etc/docker/registry/config.yml

# ---- runtime: the Node image plus /opt/berth and the config, in one layer ----
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
COPY --from=build /out/ /
# The volume's mount point must belong to the runtime user before VOLUME, so a new named volume
# starts out writable by it. Everything else stays root's and read-only to it.
RUN mkdir -p /var/lib/registry && chown 1000:1000 /var/lib/registry && chmod 0750 /var/lib/registry
# Numeric, so Kubernetes' runAsNonRoot can verify it (uid 1000 is `node` in the Node images).
USER 1000:1000
VOLUME ["/var/lib/registry"]
EXPOSE 5000
# GET /readyz on the address the configuration gives (REGISTRY_HTTP_ADDR or http.addr); node, since
# slim images have no curl or wget.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["node", "/opt/berth/healthcheck.mjs"]
# Exec form: node is PID 1 and receives docker stop's SIGTERM itself (Berth handles it and exits 0).
ENTRYPOINT ["node", "/opt/berth/dist/main.js"]
CMD ["serve", "/etc/docker/registry/config.yml"]
