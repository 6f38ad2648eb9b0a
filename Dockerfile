# syntax=docker/dockerfile:1.7
# energaizer operator image.
#   docker build -t ghcr.io/energaizer/energaizer:0.1.0 .
# Stage 1 builds wheels for energaizer[operator] and all of its dependencies, at the exact versions
# of constraints.txt (the versions CI tests, .ci/run); stage 2 installs them offline into a slim
# Python image with no compiler, no pip cache and no wheels left behind.
# The base is pinned by digest (the multi-platform index of python:3.11.16-slim-bookworm on Docker
# Hub): the same Python minor version as CI, and the same bytes on every build. To move to a newer
# patch release: docker buildx imagetools inspect python:3.11-slim-bookworm, then update both parts.
ARG PYTHON_IMAGE=python:3.11.16-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY energaizer ./energaizer
COPY operator ./operator
RUN pip wheel --wheel-dir /wheels --constraint constraints.txt ".[operator]"

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="energaizer" \
      org.opencontainers.image.description="Energy-aware placement of AI jobs on Kubernetes (kopf operator)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/energaizer/energaizer"
# PYTHONDONTWRITEBYTECODE and HOME=/tmp: the root filesystem is read-only at run time, and /tmp
# is the only writable path (an emptyDir in the chart). pip compiles bytecode at install time.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "energaizer[operator]==${VERSION}"
WORKDIR /tmp
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["energaizer", "operator"]
CMD ["--all-namespaces"]
