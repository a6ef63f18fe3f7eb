"""BACL: boundary-aware curriculum learning with contrastive local attention (arXiv 2511.08399).

The method as a library: the curriculum schedule, the boundary-aware negative sampler (BNS),
the cross-modal Transformer with its contrastive local attention loss (CLA), and ``BACLLoss``,
which has the call shape of ``open_clip.loss.ClipLoss``.
"""

from .attention import CrossModalTransformer, contrastive_local_attention_loss
from .losses import BACLLoss
from .sampler import BoundarySample, BoundarySampler, boundary_score
from .schedule import SCHEDULE_PRESETS, CurriculumSchedule

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
