#!/usr/bin/env bash
# Measures a trained model for its model card: held-out eval of both heads, mode quality (recycle vs standard
# continuations scored by the base), decode speed of every mode, and three samples per mode at a fixed seed.
# Usage: scripts/measure-model.sh MODEL_DIR OUT_DIR [THREADS]
set -euo pipefail
model=$1; out=$2; threads=${3:-2}
mkdir -p "$out"
cli=(node "$(dirname "$0")/../dist/cli/main.js")
"${cli[@]}" eval --model "$model" --data brown --threads "$threads" --json | tail -1 > "$out/eval-brown.json"
"${cli[@]}" eval --model "$model" --data brown --mode-quality --prompts 50 --new-tokens 48 --temperature 0.8 --seed 0 --threads "$threads" --json | tail -1 > "$out/mode-quality.json"
"${cli[@]}" bench --model "$model" --threads "$threads" --repeats 5 --prompts 3 --tokens 64 --json | tail -1 > "$out/bench.json"
: > "$out/samples.jsonl"
for mode in standard recycle verified; do
  for prompt in "The jury said" "In the morning, the children" "The president of the company"; do
    "${cli[@]}" generate --model "$model" --prompt "$prompt" --mode "$mode" --max-new-tokens 40 --temperature 0.8 --top-k 40 --seed 7 --threads "$threads" --json 2>/dev/null | tail -1 \
      | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const j=JSON.parse(s);console.log(JSON.stringify({mode:'$mode',prompt:process.argv[1],text:j.text,accepted:j.accepted,rejected:j.rejected,full_calls:j.full_calls,tokens:j.tokens}))})" "$prompt" >> "$out/samples.jsonl"
  done
done
echo "wrote $out"
