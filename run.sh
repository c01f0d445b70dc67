#!/usr/bin/env bash
# One command for a fresh machine:
#   bash run.sh          set up .venv, then run the main job: evaluate the shipped checkpoint (overlays),
#                        export it to every format, check parity against PyTorch, print the table
#   bash run.sh test     set up .venv, then run the test suite
#   bash run.sh web      set up .venv and the web demo's npm packages, then serve the demo on 127.0.0.1
#                        (python web_demo/serve.py: --port, --model; Ctrl-C stops)
#   bash run.sh setup    set up only
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}

apt_install() {  # apt_install PACKAGE COMMAND|/FILE: install a Debian package when what it provides is missing (root only)
    if [[ "$2" == /* ]]; then [ -e "$2" ] && return 0; elif command -v "$2" >/dev/null || [ -x "/usr/sbin/$2" ]; then return 0; fi
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        { DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >/dev/null 2>&1 \
          || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >/dev/null 2>&1; }; } \
            || echo "note: could not install $1; the tests that need it will be skipped" >&2
    fi
}

system_packages() {
    # The SSH benchmark tests start a real sshd on 127.0.0.1; the emulated-ARM test runs aarch64 Python
    # under qemu-user (its sysroot and wheels are fetched on first use and cached in ~/.cache/aulunet-edge).
    apt_install openssh-server sshd
    apt_install qemu-user-static qemu-aarch64-static
    # The Android demo's Java core is compiled and run against Python's golden pairs with JUnit 4.
    apt_install openjdk-17-jdk-headless javac
    apt_install junit4 /usr/share/java/junit4.jar
    # The web demo's tests drive Debian's Chromium (its real binary; Playwright's browser download fails here).
    apt_install chromium /usr/lib/chromium/chromium
}

web_packages() {  # the web demo's npm packages, pinned in web_demo/package-lock.json; installed when missing or stale
    apt_install nodejs node
    apt_install npm npm
    local stamp=web_demo/node_modules/.package-lock.sha256 want
    want=$(sha256sum web_demo/package-lock.json | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
    if ! command -v npm >/dev/null; then
        echo "note: npm not found; install Node.js and npm, then: npm ci --prefix web_demo" >&2; return 0
    fi
    if (cd web_demo && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null); then
        echo "$want" > "$stamp"
    else
        echo "note: npm ci in web_demo failed; the web demo cannot be built until it works" >&2
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
    test) shift; system_packages; web_packages; exec "$VENV/bin/python" -m pytest "$@" ;;
    web) shift; web_packages; exec "$VENV/bin/python" web_demo/serve.py "$@" ;;
    setup) ;;
    *) echo "usage: bash run.sh [demo|test|web|setup] [args...]" >&2; exit 2 ;;
esac
