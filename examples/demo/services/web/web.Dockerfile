FROM debian:bookworm-slim
WORKDIR /srv/web
COPY index.html serve.sh ./
RUN chmod 0755 serve.sh && useradd --system --no-create-home web
USER web
CMD ["./serve.sh"]
