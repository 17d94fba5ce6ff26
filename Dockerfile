# syntax=docker/dockerfile:1
# engagement-stream worker image: `docker build -t engagement-stream:0.1.0 .`
#
# The base image is pinned by tag. Pin it by digest too (python:3.11-slim-bookworm@sha256:...)
# once you can resolve and verify the digest with a registry client; it was not done here
# because the environment this file was written in has no container registry access.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: wheels for the project and every dependency (rocksdb, registry extras) -------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# A compiler only in case a dependency has no wheel for this platform; it stays in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY schemas/ schemas/
COPY streams/ streams/
COPY agents/ agents/
RUN pip wheel --wheel-dir /wheels ".[rocksdb,registry,fit]"

# --- runtime: the wheels installed, no compiler, no source tree, a non-root user --------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    ENGAGEMENT_STORE=rocksdict:// \
    ENGAGEMENT_DATA_DIR=/var/lib/engagement-stream
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "engagement-stream[rocksdb,registry,fit]"
# uid/gid 10001: the Helm chart's runAsUser/runAsGroup/fsGroup. A numeric USER lets Kubernetes
# verify runAsNonRoot. Only the data directory (a volume in Kubernetes) and /tmp are written.
RUN groupadd --system --gid 10001 engagement \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin engagement \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/engagement-stream
WORKDIR /var/lib/engagement-stream
USER 10001:10001
# The web server: /metrics, /users/{id}, /healthz, /readyz (ENGAGEMENT_WEB_PORT).
EXPOSE 6066
ENTRYPOINT ["engagement"]
CMD ["worker"]
