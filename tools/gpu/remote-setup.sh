#!/usr/bin/env bash
# On the GPU machine: collect the payload chunks of tools/gpu/carry.sh and install them.
#   tools/gpu/remote-setup.sh stage .carry/stage/partNN...   copy carried chunks to /root/stage
#   tools/gpu/remote-setup.sh install                        reassemble, verify, install (idempotent)
# Installs: Python packages into /tmp/site (pip --no-index --no-deps --target; vLLM's files untarred
# there), node into /root/node. (The JS bundle travels as .carry/build/js.) Logs into $OUT/setup.log.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec > >(tee -a "${OUT}/setup.log") 2>&1
STAGE=/root/stage
case "${1:-}" in
  stage)
    mkdir -p "${STAGE}"
    for p in "${@:2}"; do cp -v "${p}" "${STAGE}/"; done
    ls -la "${STAGE}"; df -h /root /tmp | tail -2
    ;;
  install)
    set -x
    if [[ -f /tmp/site/.tsray-ok ]]; then echo "already installed"; exit 0; fi
    ls -la "${STAGE}"
    rm -rf /root/payload
    cat "${STAGE}"/part* | tar -C /root -xf - || exit 1
    (cd /root/payload && sha256sum -c --quiet SHA256SUMS) || exit 1
    mkdir -p /tmp/site
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site /root/payload/wheels/*.whl || exit 1
    if command -v xz >/dev/null; then tar -C /tmp/site -xJf /root/payload/vllm-0.26.0-trim.tar.xz || exit 1
    else python3 -c "import tarfile,sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" /root/payload/vllm-0.26.0-trim.tar.xz /tmp/site || exit 1; fi
    mkdir -p /root/node
    python3 -c "import tarfile,sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" /root/payload/node-v20.20.2-linux-x64.tar.xz /root/node || exit 1
    chmod +x /root/node/bin/node
    du -sh /tmp/site /root/node
    touch /tmp/site/.tsray-ok
    ;;
  *) echo "usage: $0 stage PART... | install" >&2; exit 2 ;;
esac
