"""offline-build: build multi-service Docker images where the network is weak or absent."""

__version__ = "0.1.0"
