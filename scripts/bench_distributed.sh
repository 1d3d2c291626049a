#!/usr/bin/env bash
# Data-parallel scaling on one machine (docs/DISTRIBUTED.md): 2 ranks x 1 thread against
# 1 rank x 2 threads, for W2-shaped training (LeNet on 28x28 `shapes` images, global batch
# 256) and W3-shaped training (ResNet-18 at 96x96, global batch 32), both through
# `d2l train` (so a batch's host-side split and the allreduce are inside the timed steps).
# Prints one JSON line per run: training images/s over the training steps, and for the
# distributed runs (with the allreduce overlapped with the backward pass, and without:
# D2L_DIST_OVERLAP=0) the share of rank 0's step time spent waiting for the gradient
# allreduce (which includes waiting for the slower rank) and the final state checksum
# (the same with and without the overlap).
#
# Usage: scripts/bench_distributed.sh [D2L] [NOTE]
#   D2L   a d2l built with --features mpi (default target/release/d2l)
#   NOTE  a label copied into every line (e.g. "measured under load")
# Sizes: W2_LIMIT (default 4096 images), W3_LIMIT (default 256), EPOCHS (default 2).
set -euo pipefail
D2L=${1:-target/release/d2l}
NOTE=${2:-}
W2_LIMIT=${W2_LIMIT:-4096}
W3_LIMIT=${W3_LIMIT:-256}
EPOCHS=${EPOCHS:-2}
if [ "$(id -u)" = "0" ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

field() { # field NAME JSON -> the number after "NAME":
  sed -n "s/.*\"$1\":\([-0-9.eE+]*\).*/\1/p" <<<"$2"
}

run() { # run WORKLOAD LAYOUT RANKS THREADS OVERLAP ARGS...
  local workload=$1 layout=$2 ranks=$3 threads=$4 overlap=$5
  shift 5
  local dir="$OUT/$workload-$ranks-$overlap"
  local line
  if [ "$ranks" = 1 ]; then
    line=$("$D2L" "$@" --threads "$threads" --quiet --json --out "$dir" | grep '^{')
  else
    line=$(D2L_DIST_OVERLAP=$overlap mpirun --oversubscribe --bind-to none -np "$ranks" \
      -x D2L_DIST_OVERLAP "$D2L" "$@" \
      --threads "$threads" --quiet --json --out "$dir" --distributed | grep '^{')
  fi
  local ips wait steps share=null checksum
  checksum=$(sed -n 's/.*"state_checksums":\["\([0-9a-f]*\)".*/\1/p' <<<"$line")
  ips=$(field examples_per_sec "$line")
  wait=$(field comm_wait_secs "$line")
  steps=$(field step_secs "$line")
  if [ -n "$wait" ] && [ -n "$steps" ]; then
    share=$(awk -v w="$wait" -v s="$steps" 'BEGIN { printf "%.4f", (s > 0 ? w / s : 0) }')
  fi
  if [ "$ranks" = 1 ]; then overlap=null; elif [ "$overlap" = 1 ]; then overlap=true; else overlap=false; fi
  printf '{"workload":"%s","layout":"%s","ranks":%s,"threads_per_rank":%s,"train_images_per_sec":%s,"allreduce_wait_share":%s,"overlap":%s,"checksum":"%s","note":"%s"}\n' \
    "$workload" "$layout" "$ranks" "$threads" "$ips" "$share" "$overlap" "$checksum" "$NOTE"
}

W2=(train lenet --dataset shapes --epochs "$EPOCHS" --batch-size 256 --train-limit "$W2_LIMIT"
  --test-limit 256 --optimizer sgd --lr 0.1)
W3=(train resnet18 --dataset shapes --resize 96 --epochs "$EPOCHS" --batch-size 32
  --train-limit "$W3_LIMIT" --test-limit 32 --optimizer sgd --lr 0.05)
for w in W2 W3; do
  if [ "$w" = W2 ]; then args=("${W2[@]}"); else args=("${W3[@]}"); fi
  run "$w-train" "1 rank x 2 threads" 1 2 1 "${args[@]}"
  run "$w-train" "2 ranks x 1 thread" 2 1 1 "${args[@]}"
  run "$w-train" "2 ranks x 1 thread" 2 1 0 "${args[@]}"
done
