"""The l3ae candidates the bench tries on each protocol's validation, with the evidence that set
their ranges (validation only; figures in `benchmarks/README.md`)."""

# L3AE: reg x text_weight x text_reg x side_weight (ranges from warm, warm-tail and sparse-20
# VALIDATION over seeds 0-2, see the bench README); the text-off ablation gets every reg value.
# The sparse levels want a large reg (1000-3000) and a smooth C (text_reg 30-100); side_weight 10
# (the item vectors stacked under X, collective EASE) lifted sparse-20 validation from 0.0878 to 0.0901.
L3AE_REGS = (300.0, 100.0, 30.0, 1000.0, 3000.0)
L3AE_GRID = tuple(
    {"model": {"reg": r, "text_weight": w, "text_reg": t, "side_weight": a}}
    for r in L3AE_REGS for w in (300.0, 1000.0, 3000.0) for t in (30.0, 3.0, 100.0) for a in (10.0, 0.0)
)  # fmt: skip
# Warm, where the LMs are compared, also tries the sentence mean against `auto`'s per-field vectors
# (VALIDATION, seeds 0-2, reg 30, text_weight 300, text_reg 3: gemma3-270m fields 0.2720 vs mean 0.2714,
# minilm 0.2699 vs 0.2692).
L3AE_POOLING_GRID = tuple({"model": {**c["model"], "pooling": "mean"}} for c in L3AE_GRID)
# EDLAE's dropout emphasis (an item's L2 grows with its count, `dropout`), around the warm and
# warm-tail choices (reg 30, text_weight 300; text_reg 3 with side_weight 10 on warm, 30 with 0 on the
# tail). VALIDATION, seeds 0-2, minilm: warm 0.2699 -> 0.2728 (p 0.67, reg 10), warm-tail 0.1512 ->
# 0.1534 (p 0.5, reg 10); gemma3-270m warm (fields) 0.2720 -> 0.2736 (p 0.5, reg 3). The text-off
# ablation gets the same emphasis on EASE (warm 0.2686 -> 0.2695 at p 0.5, reg 300).
L3AE_DROPOUTS = (0.5, 0.67)
L3AE_DROPOUT_GRID = tuple(
    {"model": {"reg": r, "text_weight": 300.0, "text_reg": t, "side_weight": a, "dropout": p}}
    for p in L3AE_DROPOUTS for r in (3.0, 10.0, 30.0, 100.0) for t, a in ((3.0, 10.0), (30.0, 0.0))
)  # fmt: skip
L3AE_TEXT_OFF_DROPOUT_GRID = tuple(
    {"model": {"reg": r, "dropout": p}} for p in (0.25, *L3AE_DROPOUTS) for r in (30.0, 100.0, 300.0, 1000.0)
)
# Cold items have no interactions: their columns of B come from the text matrix C, and cold-item
# validation kept rising as reg and text_weight grew (B tends to C) up to a plateau from about 10^5:
# seed 0, best at reg = text_weight = 3000 / 30000 / 300000: minilm 0.2649 / 0.3179 / 0.3319,
# gemma3-270m 0.2645 / 0.3212 / 0.3339 (`benchmarks/README.md`). So cold-item also tries these.
# text_reg 1: gemma3-270m's mean-pooled vectors want a sharper C than minilm's (validation, 5 draws,
# reg = text_weight = 3e5: text_reg 30 / 3 / 1 / 0.3 gave 0.2736 / 0.3053 / 0.3108 / 0.3054; minilm
# 0.3407 / 0.3213 / 0.2997 / -).
L3AE_COLD_ITEM_GRID = tuple(
    {"model": {"reg": r, "text_weight": w, "text_reg": t, "side_weight": 10.0}}
    for r in (3e4, 1e5, 3e5) for w in (3e4, 1e5, 3e5) for t in (30.0, 3.0, 1.0)
)  # fmt: skip
# Cold items read by an LM first tuned on the training items' co-occurrences (`l3ae_tune`, LoRA on
# the top 2 blocks, 4 epochs at lr 3e-4). Cold-item VALIDATION, 5 draws, reg = text_weight = 3e5:
# gemma3-270m 0.3110 -> 0.3260 (text_reg 1, every draw up), minilm 0.3407 -> 0.3478 (text_reg 3).
# The top 4 blocks are tried too (more room for the decoder). Seed-0 validation chose them for minilm;
# gemma3-270m, read by its per-field vectors, chose the top 2 (text_reg 1).
L3AE_TUNED_COLD_ITEM_GRID = tuple(
    {"model": {"reg": r, "text_weight": r, "text_reg": t, "side_weight": 10.0, "tune_epochs": 4, "tune_blocks": n}}
    for n in (2, 4) for r in (1e5, 3e5) for t in (30.0, 3.0, 1.0)
)  # fmt: skip
# Mixed (known and new items in one ranking): the new items' text columns are calibrated against the
# known items' by `new_item_scale`. VALIDATION, minilm, draws 0-1, reg 30, text_weight 300, text_reg 3:
# scale 1 / 2 / 3 / 5 / 10 / 30 gave ndcg@10 0.2059 / 0.2363 / 0.2647 / 0.2706 / 0.2427 / 0.2268
# (new_recall@10 0.007 / 0.142 / 0.329 / 0.501 / 0.587 / 0.596). The base grid runs at the default (3).
L3AE_MIXED_GRID = tuple(
    {"model": {"reg": r, "text_weight": w, "text_reg": t, "side_weight": a, "new_item_scale": s}}
    for s in (1.0, 2.0, 5.0, 10.0) for r in (30.0, 100.0, 300.0) for w in (300.0, 1000.0) for t in (3.0, 30.0)
    for a in (0.0, 10.0)
)  # fmt: skip
# ... and with the LM first LoRA-tuned on the training items' co-occurrences (as cold-item's candidates;
# the top 2 or 4 blocks, 4 epochs), around the frozen choices (reg 100-300, scale 3-5). Seed-0 validation
# chose the top 4 blocks at scale 5 for both LMs: minilm 0.2436 vs 0.2365 frozen, gemma3-270m 0.2527 vs 0.2438.
L3AE_TUNED_MIXED_GRID = tuple(
    {"model": {"reg": r, "text_weight": 300.0, "text_reg": 3.0, "side_weight": 10.0, "new_item_scale": s,
               "tune_epochs": 4, "tune_blocks": n}}
    for n in (2, 4) for r in (100.0, 300.0) for s in (3.0, 5.0)
)  # fmt: skip
# l3ae_mf: a BPR residual on l3ae as tuned on the protocol (`stacked_on`). Sparse-20 VALIDATION, seeds
# 0-2: backbone_weight 0.03 / 0.1 / 0.3 / 1 gave 0.0924 / 0.0956 / 0.0966 / 0.0962 (l3ae 0.0900).
L3AE_MF_GRID = tuple({"model": {"backbone_weight": w}} for w in (0.3, 1.0, 3.0))
