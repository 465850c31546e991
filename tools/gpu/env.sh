# Environment for runs on the GPU machine (sourced by tools/gpu/remote-*.sh). REPO = repository root.
REPO="${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
export REPO
export PYTHONPATH="/tmp/site:${REPO}/python${PYTHONPATH:+:${PYTHONPATH}}"
export PATH="/root/node/bin:${PATH}"
export PYTHONUNBUFFERED=1
# vLLM offline: no FlashInfer sampler JIT/download, no usage stats, no hub access.
export VLLM_USE_FLASHINFER_SAMPLER=0 VLLM_NO_USAGE_STATS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# Never NVLink multicast (KINDS.md).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export TSRAY_PYTHON="$(command -v python3)"
export TSRAY_MODEL_CACHE=/root/models
export OUT="${OUT:-/tmp/out}"
mkdir -p "${OUT}"
