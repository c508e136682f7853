# syntax=docker/dockerfile:1
FROM ubuntu:24.04
RUN ["/bin/sh", "-c", "apt-get update && apt-get install -y wget"]
RUN <<EOT
set -e
wget -q https://example.invalid/data.bin -O /data.bin
EOT
COPY --link --chmod=0755 entry.sh /entry.sh
