#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian machine (root) or an existing checkout.
#   scripts/setup.sh                Python venv (.venv) with the project and its tools
#   scripts/setup.sh --browser      also Debian's chromium, the npm runtimes and the TF.js converter (.venv-tfjs)
#   scripts/setup.sh --deps-only    .venv's dependencies without the project itself (the Dockerfile's cached layer)
#   scripts/setup.sh --browser --assets-only   only the browser assets, no .venv: for a pip-installed tool
# COMPRESS_HOME (default: this checkout) is where node_modules/ and .venv-tfjs/ go; the tool reads the
# same setting (compressor/core/chromium.py `home`), so
#   COMPRESS_HOME=~/.local/share/edge-compress scripts/setup.sh --browser --assets-only
# prepares them for `pip install edge-compress-*.whl` in any virtualenv. COMPRESS_CHROMIUM: a Chromium
# binary of your own (then Debian's is not installed).
# Every step is skipped when its stamp is newer than the files that define it.
set -euo pipefail
ASSETS=${COMPRESS_HOME:-}
ASSETS=${ASSETS/#\~/$HOME}
[[ -z "$ASSETS" || "$ASSETS" == /* ]] || ASSETS=$PWD/$ASSETS  # relative to the caller's folder, as the tool reads it
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
ASSETS=${ASSETS:-$ROOT}
PY=${PYTHON:-python3}
PIP="pip_quiet $VENV/bin/pip install --quiet --disable-pip-version-check -c $ROOT/constraints.txt"
want_browser=0 want_python=1 want_project=1
for arg in "$@"; do
  case $arg in
    --browser) want_browser=1 ;;
    --deps-only) want_project=0 ;;
    --assets-only) want_python=0 ;;
    *) echo "setup: unknown option $arg (--browser, --deps-only, --assets-only)" >&2; exit 2 ;;
  esac
done

pip_quiet() {  # pip, minus this machine's noise about missing local index folders
  "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}

stamp_ok() {  # stamp_ok STAMP FILE... : true when STAMP exists and is newer than every FILE
  local s="$1"; shift
  [[ -f "$s" ]] || return 1
  for f in "$@"; do [[ "$f" -nt "$s" ]] && return 1; done
  return 0
}

if [[ $want_python == 1 ]]; then
  if [[ ! -x "$VENV/bin/python" ]]; then
    echo "setup: creating $VENV"
    "$PY" -m venv "$VENV"
  fi
  if ! stamp_ok "$VENV/.stamp-python" scripts/setup.sh constraints.txt pyproject.toml; then
    echo "setup: installing Python packages (first time: a few minutes)"
    $PIP setuptools==80.10.2 wheel
    # torch first, from the local CPU wheel, before anything can ask for it.
    $PIP torch==2.13.0
    $PIP onnx==1.23.2 onnxruntime==1.31.1 onnxscript==0.7.2
    $PIP torchao==0.18.0  # PT2E QAT (compressor/quantize/qat.py); no dependencies of its own
    $PIP tensorflow==2.21.0 tf-keras==2.21.0 ai-edge-litert==2.3.0
    $PIP onnx-graphsurgeon==0.6.1 sng4onnx==2.0.1 psutil==7.2.2 onnxsim==0.4.36
    # onnx2tf's own pins would downgrade tensorflow to 2.19: its runtime needs are installed above.
    $PIP --no-deps onnx2tf==1.29.24
    # The rest of pyproject.toml's dependencies and extras, read from it, without the project itself:
    # so this step needs no source, and the Dockerfile runs it before copying any.
    "$VENV/bin/python" - pyproject.toml > "$VENV/.requirements.txt" <<'EOF'
import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = p["optional-dependencies"]
print("\n".join(p["dependencies"] + extras["tflite"] + extras["browser"] + extras["dev"]))
EOF
    $PIP -r "$VENV/.requirements.txt"
    touch "$VENV/.stamp-python"
  fi
  if [[ $want_project == 1 ]] && ! stamp_ok "$VENV/.stamp-project" "$VENV/.stamp-python" pyproject.toml; then
    echo "setup: installing the project (editable)"
    $PIP --no-deps --no-build-isolation -e .
    touch "$VENV/.stamp-project"
  fi
fi

if [[ $want_browser == 1 ]]; then
  mkdir -p "$ASSETS"
  TFJS=$ASSETS/.venv-tfjs
  if ! stamp_ok "$TFJS/.stamp-tfjs" scripts/setup.sh; then
    # tensorflowjs pins an older TensorFlow: it lives in its own venv, driven as a subprocess
    # by exporters/tfjs.py, so the main environment keeps current TensorFlow.
    echo "setup: creating the TF.js converter environment ($TFJS)"
    [[ -x "$TFJS/bin/python" ]] || "$PY" -m venv "$TFJS"
    TPIP="pip_quiet $TFJS/bin/pip install --quiet --disable-pip-version-check"
    $TPIP tensorflow-cpu==2.18.0
    $TPIP --no-deps tensorflowjs==4.22.0 tf-keras==2.18.0 tensorflow-hub==0.16.1 six importlib_resources \
      tensorflow-decision-forests==1.11.0 ydf==0.9.0
    $TPIP pandas wurlitzer jax==0.4.35 jaxlib==0.4.35
    touch "$TFJS/.stamp-tfjs"
  fi
  CHROME=${COMPRESS_CHROMIUM:-/usr/bin/chromium}
  if [[ -n "${COMPRESS_CHROMIUM:-}" && ! -x "$CHROME" ]]; then
    echo "setup: COMPRESS_CHROMIUM=$CHROME is not an executable file; point it at a Chromium binary" >&2
    exit 2
  elif [[ ! -x "$CHROME" ]]; then
    echo "setup: installing Debian's chromium"
    if [[ $(id -u) == 0 ]]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  fi
  if ! stamp_ok "$ASSETS/node_modules/.stamp-npm" package.json package-lock.json; then
    echo "setup: installing npm runtime packages ($ASSETS/node_modules)"
    if [[ "$(realpath "$ASSETS")" != "$(realpath "$ROOT")" ]]; then
      cp package.json package-lock.json "$ASSETS/"  # npm ci --prefix reads the lock file there
    fi
    npm ci --prefix "$ASSETS" --no-audit --no-fund --loglevel=error
    touch "$ASSETS/node_modules/.stamp-npm"
  fi
fi
echo "setup: ready"
