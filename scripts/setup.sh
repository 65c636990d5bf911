#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian machine (root) or an existing checkout.
#   scripts/setup.sh            Python venv (.venv) with the project and its tools
#   scripts/setup.sh --browser  also Debian's chromium and the npm runtime packages
# Every step is skipped when its stamp is newer than the files that define it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3}
PIP="pip_quiet $VENV/bin/pip install --quiet --disable-pip-version-check -c $ROOT/constraints.txt"
want_browser=0
[[ "${1:-}" == "--browser" ]] && want_browser=1

pip_quiet() {  # pip, minus this machine's noise about missing local index folders
  "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}

stamp_ok() {  # stamp_ok NAME FILE... : true when .venv/.stamp-NAME is newer than every FILE
  local s="$VENV/.stamp-$1"; shift
  [[ -f "$s" ]] || return 1
  for f in "$@"; do [[ "$f" -nt "$s" ]] && return 1; done
  return 0
}

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "setup: creating $VENV"
  "$PY" -m venv "$VENV"
fi

if ! stamp_ok python scripts/setup.sh constraints.txt pyproject.toml; then
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
  $PIP -e ".[tflite,browser,dev]"
  touch "$VENV/.stamp-python"
fi

if [[ $want_browser == 1 ]]; then
  if ! stamp_ok tfjs scripts/setup.sh; then
    # tensorflowjs pins an older TensorFlow: it lives in its own venv, driven as a subprocess
    # by exporters/tfjs.py, so the main environment keeps current TensorFlow.
    echo "setup: creating the TF.js converter environment (.venv-tfjs)"
    [[ -x "$ROOT/.venv-tfjs/bin/python" ]] || "$PY" -m venv "$ROOT/.venv-tfjs"
    TPIP="pip_quiet $ROOT/.venv-tfjs/bin/pip install --quiet --disable-pip-version-check"
    $TPIP tensorflow-cpu==2.18.0
    $TPIP --no-deps tensorflowjs==4.22.0 tf-keras==2.18.0 tensorflow-hub==0.16.1 six importlib_resources \
      tensorflow-decision-forests==1.11.0 ydf==0.9.0
    $TPIP pandas wurlitzer jax==0.4.35 jaxlib==0.4.35
    touch "$VENV/.stamp-tfjs"
  fi
  if ! command -v chromium >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium"
    if [[ $(id -u) == 0 ]]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
  if ! stamp_ok npm package.json package-lock.json; then
    echo "setup: installing npm runtime packages"
    npm ci --no-audit --no-fund --loglevel=error
    touch "$VENV/.stamp-npm"
  fi
fi
echo "setup: ready"
