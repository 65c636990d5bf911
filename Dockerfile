# edge-compress in a container; runs the demo by default, any `compress` command otherwise:
#   docker build --build-arg COMMIT="$(git rev-parse HEAD)" -t edge-compress .
#   docker run --rm --shm-size=1g -v "$PWD/out:/data" edge-compress     # the demo, into ./out/demo-out
#   docker run --rm -v "$PWD:/data" edge-compress model.pt --target tflite --out out
# /data is the working folder (mount yours there; it must be writable by uid 1000, or add
# --user "$(id -u):$(id -g)"); the demo teacher is cached in /data/.cache. The browser benchmarks run
# Chromium: give it --shm-size=1g (Docker's default /dev/shm of 64 MB can crash it).
# Layers: system packages, then every Python/npm dependency from the files that pin them
# (scripts/setup.sh --deps-only), then the source: a source change rebuilds only the last few layers
# (seconds). torch is pinned to 2.13.0 (constraints.txt): give pip a CPU wheel source (PIP_FIND_LINKS or
# PIP_EXTRA_INDEX_URL build args) or it resolves the default, much larger CUDA build.
FROM python:3.11-slim-bookworm

ARG PIP_FIND_LINKS=""
ARG PIP_EXTRA_INDEX_URL=""
ENV PIP_FIND_LINKS=${PIP_FIND_LINKS} PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL} \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 \
    COMPRESS_HOME=/opt/edge-compress COMPRESS_CACHE=/data/.cache/edge-compress \
    PATH=/opt/edge-compress/.venv/bin:${PATH}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Debian's packages move with security updates: pinning their exact versions breaks the build when the
# archive drops one, so they are not pinned (the Python and npm packages are, exactly).
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nodejs npm chromium fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*

# A non-root user (uid 1000, numeric so that runAsNonRoot checks can see it) owns the tool's folder
# (COMPRESS_HOME: .venv, .venv-tfjs, node_modules) and /data.
RUN useradd --create-home --uid 1000 --shell /bin/bash compress \
 && install -d -o compress -g compress /opt/edge-compress /data
USER 1000:1000
WORKDIR /opt/edge-compress

# Dependencies: only the files scripts/setup.sh reads to install them, so this layer is rebuilt only
# when a pin changes.
COPY --chown=1000:1000 pyproject.toml constraints.txt package.json package-lock.json ./
COPY --chown=1000:1000 scripts/setup.sh scripts/
RUN bash scripts/setup.sh --browser --deps-only && rm -rf "${HOME}/.npm"

# The source, installed into the same environment without touching its dependencies.
COPY --chown=1000:1000 README.md ./
COPY --chown=1000:1000 compressor compressor
COPY --chown=1000:1000 exporters exporters
COPY --chown=1000:1000 benchmarks benchmarks
RUN .venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation . && rm -rf build ./*.egg-info

# There is no .git in the image: the manifest's commit comes from this build argument
# (compressor/core/provenance.py reads COMPRESS_COMMIT). Last, so a new commit rebuilds nothing above.
ARG COMMIT=unknown
ENV COMPRESS_COMMIT=${COMMIT}

WORKDIR /data
ENTRYPOINT ["compress"]
CMD ["demo", "--student", "auto", "--ratio", "0.25", "--quantize", "int8", "--target", "all,onnx-web", \
     "--bench", "cpu,mobile,browser", "--out", "demo-out", "--overwrite"]
