"""THE PAPER'S OWN published numbers and statements: the only numbers in paper/ not made by the DAG.

Source: the seed summary of "Aligning by Misaligning" (NeurIPS 2025, arXiv 2511.08399),
/work/shared/seed/000_dc73d884c8b75a31.txt. They were measured by the paper's authors on real
data (LAION-400M, WebVid, WavText5K, VAST-27M) with CLIP ViT-B/16 encoders on 32 A100s; our
numbers come from the synthetic stand-in benchmarks at CPU scale. Every table and claim that
shows one of these labels it as the paper's.

Nothing here is a setting of ours: the mapping of the paper's columns onto our benchmarks and
metrics lives in ``paper_common.MAIN_COLUMNS``.
"""

# Where the numbers below come from, printed under every table and in the claims.
PAPER_SOURCE = "paper (arXiv 2511.08399, seed summary): real data, not our synthetic benchmarks"

# The paper's datasets, in the order of its headline table, keyed by our column keys.
PAPER_DATASETS = {
    "image_r1": "LAION-400M",
    "image_map": "LAION-400M",
    "video_r1": "WebVid",
    "audio_r1": "WavText5K",
    "audio_video_acc": "VAST-27M",
}

# The headline table, in percent; None where the paper reports "-". The paper has no plain
# M3-JEPA row, hence no entry for it.
PAPER_TABLE = {
    "CLIP": {"image_r1": 35.2, "image_map": 42.3, "video_r1": 14.3, "audio_r1": None, "audio_video_acc": None},
    "BLIP": {"image_r1": 42.0, "image_map": 49.2, "video_r1": 17.2, "audio_r1": None, "audio_video_acc": 76.5},
    "GRAM": {"image_r1": 44.0, "image_map": 50.8, "video_r1": 22.0, "audio_r1": 23.1, "audio_video_acc": 77.3},
    "CLIP+BACL": {"image_r1": 46.5, "image_map": 53.6, "video_r1": 19.5, "audio_r1": None, "audio_video_acc": None},
    "M3-JEPA+BACL": {"image_r1": 46.0, "image_map": 52.9, "video_r1": 23.8, "audio_r1": 26.0,
                     "audio_video_acc": 79.5},
}

# Ablations: R@1 gains in points over the base aligner, by our benchmark standing in for the
# paper's dataset (image_text for LAION-400M, video_text for WebVid).
PAPER_ABLATIONS = {
    "bns_gain": {"image_text": 7.3, "video_text": 4.9},
    "cla_gain": {"image_text": 3.2, "video_text": 2.4},
    "super_additive": "BNS+CLA (full BACL): the combined effect significantly exceeds the sum of the parts",
    "schedule_order": ("Default", "Aggressive", "Shallow"),  # best first, as the paper ranks them
    "schedule_statement": "Default (0.3, -0.5, 1.5) > Aggressive > Shallow; both overly aggressive and "
                          "overly conservative schedules underperform",
    "ael_gain_pp": 11.0,
    "ael_statement": "AEL: BACL achieves ~11 pp improvement, confirming that CLA learns to localize "
                     "mismatch tokens",
}

# Training cost of BACL over its base: relative time and absolute memory (A100, ViT-B/16).
PAPER_COST = {
    "time_overhead": 0.08,
    "memory_overhead_gb": 1.7,
    "statement": "training overhead increases by approximately 8% (time) and 1.7 GB (memory)",
}

# The theoretical claims, keyed as the theory notebooks key their verdicts.
PAPER_THEORY = {
    "theorem_4_1": "Theorem 4.1: BACL enjoys a fast generalization rate of O~(1/n)",
    "theorem_4_2": "Theorem 4.2: uniform sampling incurs an unavoidable excess risk of Omega(rho/n)",
    "proposition_4_1": "Proposition 4.1: the alignment margin contracts at a super-exponential rate "
                       "O(exp(-Theta(eta^2)))",
}

# The plug-in claim behind every "X+BACL vs X" comparison the table has no paper numbers for.
PAPER_PLUGIN_STATEMENT = "BACL is a plug-and-play add-on that enhances arbitrary dual-encoders (CLIP, M3-JEPA, ...)"
