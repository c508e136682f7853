FROM rust:1.82 AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && cargo fetch
COPY . .
RUN cargo build --release --offline

FROM debian:bookworm-slim
COPY --from=build /src/target/release/app /usr/local/bin/app
