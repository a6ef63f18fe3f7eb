"""BACL: boundary-aware curriculum learning with contrastive local attention (arXiv 2511.08399).

The method as a library: the curriculum schedule, the boundary-aware negative sampler (BNS),
the cross-modal Transformer with its contrastive local attention loss (CLA), and ``BACLLoss``,
which has the call shape of ``open_clip.loss.ClipLoss``.

The names below are imported on first use (PEP 562), so that a job needing only a torch-free
part of the package (data generation, seed statistics, most of the paper's tables) does not pay torch's
import (~1 s per pipeline job).
"""

import os

import lazy_loader

# Nothing is ever downloaded at run time: set before any bacl module imports open_clip (and with it
# huggingface_hub), which every one does through this package; a caller's own setting wins.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "attention": ["CrossModalTransformer", "contrastive_local_attention_loss"],
    "losses": ["BACLLoss"],
    "sampler": ["BoundarySample", "BoundarySampler", "boundary_score"],
    "schedule": ["SCHEDULE_PRESETS", "CurriculumSchedule"],
})
__version__ = "0.1.0"
