# syntax=docker/dockerfile:1
# Container images, one target each:
#   docker build --target operator    -t avatar-operator .
#   docker build --target runtime-cpu -t avatar-runtime:cpu .
# The GPU runtime image (CUDA 12 base, XTTS-v2 and Ditto read from a model volume)
# comes with the GPU-engine issue.

ARG PYTHON_VERSION=3.11

# --- build the wheel once; every image installs it with its own extra ----------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS wheel
WORKDIR /src
RUN pip install --no-cache-dir build==1.*
COPY pyproject.toml README.md ./
COPY runtime/ runtime/
COPY operator/ operator/
COPY devcluster/ devcluster/
RUN python -m build --wheel --outdir /dist

# --- what every image shares: pip settings and a non-root user -------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin avatar
# Non-root; the root filesystem can be read-only: scratch space is /tmp (an emptyDir).
WORKDIR /tmp

# --- operator: kopf, the Kubernetes client and the runtime's API schemas; no engines --
FROM base AS operator
# The wheel is mounted from its stage for the install only: no copy stays in a layer.
RUN --mount=from=wheel,source=/dist,target=/dist pip install "$(ls /dist/*.whl)[operator]"
USER 10001:10001
# 9090: Prometheus /metrics; 8081: kopf's liveness probe.
EXPOSE 9090 8081
ENTRYPOINT ["kopf", "run", "--all-namespaces", "--liveness=http://0.0.0.0:8081/healthz", \
            "-m", "avatar_operator.handlers"]

# --- CPU runtime: embedded engines (Piper, faster-whisper tiny.en, OpenCV renderer) --
FROM base AS runtime-cpu
RUN --mount=from=wheel,source=/dist,target=/dist pip install "$(ls /dist/*.whl)[cpu]"
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["avatar-runtime"]
CMD ["serve"]
