FROM golang:1.23 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o /out/app ./cmd/app

FROM registry.example.invalid/distroless/static
COPY --from=build /out/app /app
ENTRYPOINT ["/app"]
