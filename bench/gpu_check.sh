#!/usr/bin/env bash
# The GPU check behind the GPU sections of BENCHMARKS.md, as one short script for a lent card:
# `aimc bench --backend gpu --breakdown`, the PyTorch baseline in the same call (when torch is
# installed), and the per-trial agreement of the GPU with the CPU backend on runs that take every
# bound-management regime (nothing saturated; a few vectors, redone by `bound`; many, redone by
# the GEMM's level-1 pass) and the full periphery path (`mvm_full`). Prints a short table; the
# full outputs stay in OUT_DIR.
#
# Usage: bench/gpu_check.sh [AIMC_BINARY] [OUT_DIR]   (from the repository root; a stripped release
# binary is enough, with the Vulkan loader installed on the machine). SIZE=small runs the bench
# at its small sizes: a dry run of the whole script on lavapipe.
set -u
B=${1:-target/release/aimc}
OUT=${2:-gpu_check}
mkdir -p "$OUT"
start=$SECONDS

timeout 300 "$B" bench --backend gpu --size "${SIZE:-full}" --breakdown > "$OUT/bench.txt" 2>&1
echo "aimc bench: rc $?"
sed -n '1,27p' "$OUT/bench.txt"

# The cases the checks moved on the H200 ((a) 1.41x, (b) 1.57x, (c) 1.30x from `full` to `off`)
# and the MLP, with naga's loop guards (`full`) and with no checks (`off`): what the default's
# dropped loop guards and the remaining bounds checks cost on this card.
for m in full off; do
    AIMC_SHADER_CHECKS=$m timeout 300 "$B" bench --backend gpu --size "${SIZE:-full}" --cases a,b,c,e > "$OUT/bench-$m.txt" 2>&1
    echo "aimc bench, AIMC_SHADER_CHECKS=$m: rc $?"
    grep -E '^(shader|measured|\([a-m]\) )' "$OUT/bench-$m.txt"
done

if python3 -c "import torch" 2>/dev/null; then
    timeout 200 python3 bench/torch_baseline.py > "$OUT/torch.txt" 2>&1
    echo "torch baseline: rc $?"
    cat "$OUT/torch.txt"
fi

# name, experiment, extra flags: the GPU's trials.csv against the CPU backend's.
full="--set periphery.w_noise=0.0175 --set periphery.w_noise_type=pcm_read --set periphery.ir_drop=1.0"
checks=(
    "mlp|experiments/bench_mlp.toml|"
    "mlp, out_bound 6 (few redone)|experiments/bench_mlp.toml|--set periphery.out_bound=6"
    "mlp, out_bound 3 (level-1 pass)|experiments/bench_mlp.toml|--set periphery.out_bound=3"
    "mlp, full path, out_bound 3|experiments/bench_mlp.toml|--set periphery.out_bound=3 $full"
    "cnn|experiments/digits_cnn.toml|"
    "transformer|experiments/transformer_lra.toml|"
    "question answering (answer_span)|experiments/kvqa.toml|"
    "SQuAD official F1, windows|experiments/kvqa_squad.toml|"
)
# The default modules against naga's full set (loop guards on): identical numbers on the GPU.
AIMC_SHADER_CHECKS=full timeout 300 "$B" run experiments/bench_mlp.toml --backend gpu --trials 20 --out "$OUT/checks-full" > "$OUT/checks-full.log" 2>&1
timeout 300 "$B" run experiments/bench_mlp.toml --backend gpu --trials 20 --out "$OUT/checks-on" > "$OUT/checks-on.log" 2>&1
if cmp -s "$OUT/checks-full/trials.csv" "$OUT/checks-on/trials.csv"; then
    echo "mlp trials.csv, shader checks on against full: identical"
else
    echo "mlp trials.csv, shader checks on against full: DIFFERENT (see $OUT/checks-*)"
fi
printf '\n%-36s %12s %12s\n' "per-trial check (20 trials)" "lines" "GPU != CPU"
i=0
for c in "${checks[@]}"; do
    IFS='|' read -r name file flags <<< "$c"
    i=$((i + 1))
    for be in gpu cpu; do
        # shellcheck disable=SC2086
        timeout 300 "$B" run "$file" --backend "$be" --trials 20 $flags --out "$OUT/check$i-$be" > "$OUT/check$i-$be.log" 2>&1
    done
    g="$OUT/check$i-gpu/trials.csv"
    c2="$OUT/check$i-cpu/trials.csv"
    if [ -f "$g" ] && [ -f "$c2" ]; then
        printf '%-36s %12s %12s\n' "$name" "$(wc -l < "$c2")" "$(diff "$g" "$c2" | grep -c '^<')"
    else
        printf '%-36s %12s\n' "$name" "failed (see $OUT/check$i-*.log)"
    fi
done
# Host time of case (e) in a warm process's second run (`--profile`: stages, statistics, waits),
# and the noise budget against its plain run (the budget target is <= 5x).
timeout 120 "$B" run experiments/bench_mlp.toml --backend gpu --out "$OUT/host-warm" > /dev/null 2>&1
timeout 120 "$B" run experiments/bench_mlp.toml --backend gpu --profile --out "$OUT/host" > "$OUT/host.log" 2>&1
echo "aimc run bench_mlp --profile (warm cache):"
grep -A12 'wall time of the run' "$OUT/host.log"
plain=experiments/.digits_plain_check.toml   # beside the original: its paths are relative
sed -e '/^\[budget\]/,/^$/d' experiments/digits_budget.toml > "$plain"
for f in experiments/digits_budget.toml "$plain"; do
    t0=$(date +%s%N)
    timeout 200 "$B" run "$f" --backend gpu --out "$OUT/budget-$(basename "$f" .toml)" > "$OUT/budget-$(basename "$f" .toml).log" 2>&1
    rc=$?
    echo "$(basename "$f"): rc $rc, $(( ($(date +%s%N) - t0) / 1000000 )) ms"
done
rm -f "$plain"
echo "total $((SECONDS - start)) s"
