FROM debian:bookworm-slim
WORKDIR /app
COPY bin/ /usr/local/bin/
COPY config.yaml /etc/app/config.yaml
RUN chmod 0755 /usr/local/bin/app && useradd --system app
USER app
CMD ["app"]
