FROM debian:bookworm-slim
COPY --from=busybox /bin/busybox /bin/busybox
COPY --from=docker.io/library/nginx:1.27 /etc/nginx/nginx.conf /etc/nginx/nginx.conf
