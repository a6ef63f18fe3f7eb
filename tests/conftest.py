"""Test-wide settings: offline, single-threaded torch, a bounded hypothesis profile."""

import os

# Nothing in the tests may reach a hub; set before anything imports open_clip.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Two cores are shared by the pytest-xdist workers; extra threads only contend.
torch.set_num_threads(1)

settings.register_profile(
    "bacl",
    max_examples=40,  # enough to find shape and edge-case bugs; keeps the suite fast
    deadline=None,  # torch's first calls are slow; timing is measured in benchmarks/, not here
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "bacl"))
