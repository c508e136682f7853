ARG PYTHON_VERSION=3.12
ARG BASE=python:${PYTHON_VERSION}-slim
FROM ${BASE} AS base
FROM base AS final
RUN python -m pip install --upgrade pip wheel
FROM node
