FROM debian:bookworm
RUN sed -i 's/deb.example.invalid/mirror.example.invalid/g' /etc/apt/sources.list.d/debian.sources \
    && apt-get update \
    && apt-get install -y --no-install-recommends build-essential
RUN python3 -c "import nltk; nltk.download('punkt')"
