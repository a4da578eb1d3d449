# The project's image: the base that `mlflow run kubernetes --backend kubernetes` builds on
# (kubernetes/MLproject's docker_env) and what each Kubernetes job runs (docs/scale.md).
#   docker build -t xraytrack .
FROM python:3.11-slim-bookworm

WORKDIR /opt/xraytrack
# No pip cache in a layer; MLflow's git lookup stays quiet where the image has no git.
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 GIT_PYTHON_REFRESH=quiet
COPY pyproject.toml README.md ./
COPY xraytrack/ xraytrack/
COPY experiments/ experiments/
# The README's install step, as it is there (tests/test_kubernetes.py checks).
RUN python3.11 -m venv .venv && .venv/bin/pip install -e ".[dev]"

# Caches and checkpoints go to /cache: a volume in the job template, so a retried pod resumes.
ENV PATH=/opt/xraytrack/.venv/bin:$PATH \
    XRAYTRACK_CACHE_DIR=/cache \
    TF_ENABLE_ONEDNN_OPTS=1 \
    TF_CPP_MIN_LOG_LEVEL=2
RUN useradd --uid 1000 --create-home xraytrack && mkdir /cache && chown xraytrack /cache
USER 1000
