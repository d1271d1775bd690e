#!/usr/bin/env bash
# The task-transfer recipe (issue 3), stage by stage, then the ablation table.
#   bash scripts/transfer_recipe.sh            # all stages; each resumes from its last.pt
#   THREADS=2 bash scripts/transfer_recipe.sh  # torch CPU threads per stage (default 1)
# Needs the [train] extra and ../shared/data; the baseline row is the pipeline issue's
# `stream-derain train supervised --config configs/baseline.json`.
set -euo pipefail
cd "$(dirname "$0")/.."
T=${THREADS:-1}
C=configs/transfer
R=runs/transfer

stream-derain train recognition --config $C/recognition.json --threads "$T"
stream-derain train recognition --config $C/judge.json --threads "$T"   # the ablation's judge only
stream-derain train reconstruction --config $C/reconstruction.json --threads "$T"
stream-derain train distill --config $C/distill.json --threads "$T"
for row in pairs_only distill contrastive semi; do
  stream-derain train finetune --config $C/finetune_$row.json --threads "$T"
done
# controls: distillation without its output-level terms; the distilled students trained on
# the baseline's unlimited pair stream instead of the few pairs; the baseline with another seed
stream-derain train distill --config $C/distill_features.json --threads "$T"
stream-derain train finetune --config $C/finetune_distill_features.json --threads "$T"
stream-derain train supervised --config $C/supervised_from_distill.json --threads "$T"
stream-derain train supervised --config $C/supervised_from_distill_features.json --threads "$T"
stream-derain train supervised --config $C/baseline_seed1.json --threads "$T"   # run-to-run spread

stream-derain train ablation --judge $R/judge/last.pt \
  --row baseline=runs/baseline/last.pt \
  --row "baseline (seed 1)=$R/baseline_seed1/last.pt" \
  --row distilled-only=$R/distill/last.pt \
  --row pairs-only=$R/ft_b_pairs_only/last.pt \
  --row +distillation=$R/ft_c_distill/last.pt \
  --row "+distillation (features only)=$R/ft_c2_distill_features/last.pt" \
  --row +contrastive=$R/ft_d_contrastive/last.pt \
  --row +semi-supervised=$R/ft_e_semi/last.pt \
  --row "distilled + baseline pairs=$R/sup_distill/last.pt" \
  --row "feature-distilled + baseline pairs=$R/sup_distill_features/last.pt" \
  --markdown docs/ablation_table.md --json $R/ablation.json \
  --picture $R/real_side_by_side.jpg --compare "input,baseline,+distillation,+semi-supervised,distilled + baseline pairs"
