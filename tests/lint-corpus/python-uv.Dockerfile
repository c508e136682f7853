FROM registry.example.invalid/astral-sh/uv:0.4-python3.12-bookworm-slim
WORKDIR /app
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    uv sync --frozen --no-install-project
COPY . /app
