"""BACL: boundary-aware curriculum learning with contrastive local attention (arXiv 2511.08399).

The method as a library: the curriculum schedule, the boundary-aware negative sampler (BNS),
the cross-modal Transformer with its contrastive local attention loss (CLA), and ``BACLLoss``,
which has the call shape of ``open_clip.loss.ClipLoss``.
"""

import os

# Nothing is ever downloaded at run time: set before any bacl module imports open_clip (and with it
# huggingface_hub), which every one does through this package; a caller's own setting wins.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from .attention import CrossModalTransformer, contrastive_local_attention_loss  # noqa: E402
from .losses import BACLLoss  # noqa: E402
from .sampler import BoundarySample, BoundarySampler, boundary_score  # noqa: E402
from .schedule import SCHEDULE_PRESETS, CurriculumSchedule  # noqa: E402

__all__ = [
    "BACLLoss",
    "BoundarySample",
    "BoundarySampler",
    "CrossModalTransformer",
    "CurriculumSchedule",
    "SCHEDULE_PRESETS",
    "boundary_score",
    "contrastive_local_attention_loss",
]
__version__ = "0.1.0"
