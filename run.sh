#!/usr/bin/env bash
# One command for a fresh machine:
#   bash run.sh          set up .venv, then run the main job (evaluate the shipped checkpoint + overlays)
#   bash run.sh test     set up .venv, then run the test suite
#   bash run.sh setup    set up only
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}

setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        "$PY" -m venv "$VENV"
    fi
    local pip="$VENV/bin/python -m pip --disable-pip-version-check -q"
    # torch first and pinned: on these machines 2.13.0 is a CPU wheel on local disk; the project's
    # range admits it, so nothing below pulls another (multi-GB CUDA) build.
    if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
        $pip install "torch==2.13.0"
    fi
    $pip install -e ".[core,onnx,openvino,test]"
}

setup
case "${1:-demo}" in
    demo) shift || true; exec "$VENV/bin/python" model/demo.py --no-progress "$@" ;;
    test) shift; exec "$VENV/bin/python" -m pytest "$@" ;;
    setup) ;;
    *) echo "usage: bash run.sh [demo|test|setup] [args...]" >&2; exit 2 ;;
esac
