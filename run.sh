#!/usr/bin/env bash
# One command for a fresh machine:
#   bash run.sh          set up .venv, then run the main job: evaluate the shipped checkpoint (overlays),
#                        export it to every format, check parity against PyTorch, print the table
#   bash run.sh test     set up .venv, then run the test suite
#   bash run.sh setup    set up only
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}

system_packages() {
    # The SSH benchmark tests start a real sshd on 127.0.0.1 (Debian's openssh-server).
    if ! command -v sshd >/dev/null && ! [ -x /usr/sbin/sshd ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        { DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-server >/dev/null 2>&1 \
          || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-server >/dev/null 2>&1; }; } \
            || echo "note: could not install openssh-server; the SSH benchmark tests will be skipped" >&2
    fi
}

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
    # constraints.txt holds torch at 2.13.0 while litert-torch and friends resolve.
    $pip install -c constraints.txt -e ".[core,export,test]"
}

setup
case "${1:-demo}" in
    demo) shift || true
          "$VENV/bin/python" model/demo.py --no-progress "$@"
          exec "$VENV/bin/python" export/all.py --out outputs/exports ;;
    test) shift; system_packages; exec "$VENV/bin/python" -m pytest "$@" ;;
    setup) ;;
    *) echo "usage: bash run.sh [demo|test|setup] [args...]" >&2; exit 2 ;;
esac
