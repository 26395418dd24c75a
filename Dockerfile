# Berth container image, laid out like registry:2 (config at /etc/docker/registry/config.yml, data in
# /var/lib/registry, port 5000). Not yet built or tested in CI: that is issue #6.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /opt/berth
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/package.json ./
COPY config.example.yaml /etc/docker/registry/config.yml
RUN mkdir -p /var/lib/registry && chown node:node /var/lib/registry
USER node
VOLUME ["/var/lib/registry"]
EXPOSE 5000
ENTRYPOINT ["node", "/opt/berth/dist/main.js"]
CMD ["serve", "/etc/docker/registry/config.yml"]
