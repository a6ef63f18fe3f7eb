# Helpers of the token-block choice (no rules here): which families' patch tokens a benchmark keeps,
# their settings, and the probe records that choose them (features.smk, probe.smk).

# The families whose patch tokens a benchmark's feature sets keep (video frames are frame
# embeddings, whatever the block), and the setting of their token block: "probe" (default: the
# block the probe of the family's pre-training benchmark chose, rule probe_layers), "last" or a
# block number (config key encoders.<family>.token_layer).
TOKEN_FAMILIES = {"image_text": ["image"], "video_text": [], "audio_text": ["audio"], "audio_video_text": ["audio"]}


def token_layer_setting(family):
    return config["encoders"][family].get("token_layer", "probe")


def text_family(benchmark):
    """The family whose text tower encodes the benchmark's captions (as bacl.data.features does)."""
    return "audio" if benchmark == "audio_text" else "image"


def text_layer_setting(benchmark):
    """The block of the text tokens: encoders.<family>.text_token_layer, "last" (default) or a block."""
    return config["encoders"][text_family(benchmark)].get("text_token_layer", "last")


def probe_file(benchmark):
    return f"{RESULTS}/probe/{benchmark}.json"


def token_layer_probes(wildcards):
    """The probe records that choose the benchmark's token blocks (none for fixed settings)."""
    return {f: probe_file(PRETRAIN_SOURCE[f]) for f in TOKEN_FAMILIES[wildcards.benchmark]
            if token_layer_setting(f) == "probe"}
