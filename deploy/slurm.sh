#!/usr/bin/env bash
# Runs an aimc experiment as a Slurm job array of N shards, then merges them in a dependent job.
#   deploy/slurm.sh EXPERIMENT.toml N [OUT]
# Each array task runs `aimc run --shard env` (K and N from SLURM_ARRAY_TASK_ID and
# SLURM_ARRAY_TASK_COUNT) into OUT.shard-K, beside OUT; the merge job runs once every task has
# succeeded and writes the single run's results into OUT (default results/NAME, where a plain
# `aimc run` writes them). Set AIMC to the binary (default: aimc on PATH) and SBATCH_ARGS for
# partition, time, GPUs and so on.
set -euo pipefail
exp=${1:?usage: deploy/slurm.sh EXPERIMENT.toml N [OUT]}
n=${2:?usage: deploy/slurm.sh EXPERIMENT.toml N [OUT]}
out=${3:-results/$(basename "$exp" .toml)}
aimc=${AIMC:-aimc}
mkdir -p "$(dirname "$out")"
array=$(sbatch --parsable ${SBATCH_ARGS:-} --array=0-$((n - 1)) --job-name=aimc-shards \
  --wrap="$aimc run '$exp' --shard env --out '$out'.shard-\$SLURM_ARRAY_TASK_ID")
sbatch --parsable ${SBATCH_ARGS:-} --dependency=afterok:"$array" --job-name=aimc-merge \
  --wrap="$aimc merge --out '$out' $(for k in $(seq 0 $((n - 1))); do printf "'%s'.shard-%d " "$out" "$k"; done)"
