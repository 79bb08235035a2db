#!/usr/bin/env bash
# ReSkill co-evolution with veRL on a Ray cluster you start by hand (one command per node).
#
#   on the head node:     scripts/launch/multi_node_ray.sh head
#   on every other node:  scripts/launch/multi_node_ray.sh worker <head-ip>
#   then, on the head:    scripts/launch/multi_node_ray.sh train <nnodes> [env] [Hydra overrides...]
#
# Every node needs the same Python environment (pip install "reskill-gym[verl]" plus vLLM)
# and the dataset path given to `train` (a shared filesystem, or the same copy per node:
# only the trainer reads it). Skill-library state lives on the head node (the co-evolution
# actor is pinned there); rollout workers receive library versions over Ray, so they need no
# shared filesystem for it. The `reskill_verl.plugin` registration reaches every worker
# through the job's runtime_env (configs/verl/*.yaml: ray_kwargs.ray_init.runtime_env).
# Environment knobs: RAY_PORT (6379), NGPUS (GPUs per node, default all), DATA_DIR.
set -euo pipefail

ROLE="${1:?usage: multi_node_ray.sh head | worker <head-ip> | train <nnodes> [env] [overrides...]}"
shift
RAY_PORT="${RAY_PORT:-6379}"
NGPUS="${NGPUS:-$( (nvidia-smi -L 2>/dev/null || true) | wc -l)}"

case "${ROLE}" in
  head)
    ray start --head --port="${RAY_PORT}" --num-gpus="${NGPUS}" --include-dashboard=false
    ;;
  worker)
    HEAD_IP="${1:?worker needs the IP of the head node}"
    ray start --address="${HEAD_IP}:${RAY_PORT}" --num-gpus="${NGPUS}"
    ;;
  train)
    NNODES="${1:?train needs the number of nodes}"
    shift
    ENV_NAME="${1:-alfworld}"
    [ $# -gt 0 ] && shift
    DATA_DIR="${DATA_DIR:-data/${ENV_NAME}}"
    if [ ! -f "${DATA_DIR}/train.parquet" ]; then
      reskill verl prepare --env "${ENV_NAME}" --out "${DATA_DIR}"
    fi
    # veRL's run_ppo calls ray.init(); RAY_ADDRESS makes it join this cluster.
    export RAY_ADDRESS="${RAY_ADDRESS:-127.0.0.1:${RAY_PORT}}"
    exec reskill verl train --config-name "${ENV_NAME}" \
      data.train_files="${DATA_DIR}/train.parquet" \
      data.val_files="${DATA_DIR}/val.parquet" \
      trainer.nnodes="${NNODES}" \
      trainer.n_gpus_per_node="${NGPUS}" \
      "$@"
    ;;
  *)
    echo "multi_node_ray.sh: unknown role ${ROLE} (head, worker, train)" >&2
    exit 2
    ;;
esac
