#!/usr/bin/env bash
# ReSkill co-evolution with veRL on one node (all local GPUs).
#
#   scripts/launch/single_node.sh [alfworld|scienceworld|search] [Hydra overrides...]
#
# Prepares data/<env>/{train,val}.parquet on first use, then runs `reskill verl train`
# (veRL's main_ppo with configs/verl/<env>.yaml). Environment knobs:
#   DATA_DIR      dataset folder (default data/<env>)
#   PREPARE_ARGS  extra `reskill verl prepare` flags, e.g. "--env-arg difficulty=small"
#   NGPUS         GPUs to use (default: all that nvidia-smi lists)
set -euo pipefail

ENV_NAME="${1:-alfworld}"
[ $# -gt 0 ] && shift
DATA_DIR="${DATA_DIR:-data/${ENV_NAME}}"
NGPUS="${NGPUS:-$( (nvidia-smi -L 2>/dev/null || true) | wc -l)}"
if [ "${NGPUS}" -lt 1 ]; then
  echo "single_node.sh: no GPU found (set NGPUS)" >&2
  exit 1
fi

if [ ! -f "${DATA_DIR}/train.parquet" ]; then
  # shellcheck disable=SC2086  # PREPARE_ARGS is a list of flags on purpose
  reskill verl prepare --env "${ENV_NAME}" --out "${DATA_DIR}" ${PREPARE_ARGS:-}
fi

exec reskill verl train --config-name "${ENV_NAME}" \
  data.train_files="${DATA_DIR}/train.parquet" \
  data.val_files="${DATA_DIR}/val.parquet" \
  trainer.nnodes=1 \
  trainer.n_gpus_per_node="${NGPUS}" \
  "$@"
