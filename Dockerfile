# The runtel image: `runtel bridge serve` by default (OTLP/HTTP on :4320 -> MLflow), and the CLI
# (`docker run runtel:local node dist/cli/main.js demo`). Built by docker-compose.yml.
#
#   docker build -t runtel:local .
#   docker run -e MLFLOW_TRACKING_URI=http://mlflow:5000 -e RUNTEL_BRIDGE_TOKEN=... -p 4320:4320 runtel:local

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are copied; build explicitly below.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    RUNTEL_BRIDGE_HOST=0.0.0.0 \
    RUNTEL_BRIDGE_PORT=4320 \
    RUNTEL_DIR=/data/runtel-runs
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 4320
# RUNTEL_BRIDGE_TOKEN and MLFLOW_TRACKING_URI come from the environment (docker-compose.yml).
CMD ["node", "dist/cli/main.js", "bridge", "serve", "--host", "0.0.0.0"]
