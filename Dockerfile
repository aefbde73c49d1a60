# Sluice against an external PostgreSQL (set DATABASE_URL). Untested here: no Docker engine on our machines.
FROM node:20-slim
WORKDIR /app
ENV NODE_ENV=production

COPY package.json package-lock.json ./
# Dev dependencies are needed for the TypeScript build, then dropped.
RUN npm ci --include=dev
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY migrations ./migrations
COPY openapi.yaml ./
COPY public ./public
RUN npm run build && npm prune --omit=dev

ENV HOST=0.0.0.0 PORT=3000 SLUICE_DATA_DIR=/data
VOLUME /data
EXPOSE 3000
# --max-semi-space-size: see README, "Node's young generation".
CMD ["node", "--max-semi-space-size=64", "dist/main.js"]
