# The same set-up as the README's commands, in a container; runs the demo by default.
#   docker build -t edge-compress . && docker run --rm -v "$PWD/demo-out:/app/demo-out" edge-compress
# torch is pinned to 2.13.0 (constraints.txt); give pip a CPU wheel source (PIP_FIND_LINKS or
# PIP_EXTRA_INDEX_URL build args) or it resolves the default, much larger build.
FROM python:3.11-slim-bookworm

ARG PIP_FIND_LINKS=""
ARG PIP_EXTRA_INDEX_URL=""
ENV PIP_FIND_LINKS=${PIP_FIND_LINKS} PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL} \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      make git nodejs npm chromium chromium-driver fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml constraints.txt package.json package-lock.json README.md Makefile ./
COPY scripts ./scripts
COPY compressor ./compressor
COPY exporters ./exporters
COPY benchmarks ./benchmarks
RUN bash scripts/setup.sh --browser
COPY tests ./tests

CMD ["make", "demo"]
