FROM node:20-slim
RUN corepack enable
WORKDIR /app
COPY pnpm-lock.yaml ./
RUN pnpm fetch --prod
COPY . .
RUN pnpm install --offline --prod
