"""The methods of the tables: CLIP, BLIP, GRAM, M3-JEPA, the zero-shot floor, and BACL on top.

A method is described by a small dict (from the config): ``aligner`` (one of ``ALIGNERS``),
``bns`` and ``cla`` switches, and optional overrides of the BACL and Transformer settings.
:func:`build_aligner` turns it into an :class:`Aligner`; :func:`add_bacl` is the plug-in: it
replaces an aligner's contrastive loss by :class:`~bacl.losses.BACLLoss` with BNS and/or CLA.
"""

from __future__ import annotations

from ..losses import BACLLoss
from ..sampler import BoundarySampler
from ..schedule import CurriculumSchedule
from .base import Aligner, CLIPAligner, FeatureBatch, FeatureDims, ProjectionHead, ZeroShotAligner, cross_modal_transformer
from .blip import BLIPAligner
from .gram import GRAMAligner
from .m3jepa import M3JEPAAligner

__all__ = [
    "ALIGNERS", "Aligner", "BLIPAligner", "CLIPAligner", "FeatureBatch", "FeatureDims", "GRAMAligner",
    "M3JEPAAligner", "ProjectionHead", "ZeroShotAligner", "add_bacl", "build_aligner",
]

ALIGNERS = {
    "zero_shot": ZeroShotAligner,
    "clip": CLIPAligner,
    "blip": BLIPAligner,
    "gram": GRAMAligner,
    "m3jepa": M3JEPAAligner,
}
# BACL replaces the InfoNCE term, so it plugs into the aligners that have one.
BACL_COMPATIBLE = ("clip", "blip", "m3jepa")
SAMPLER_KEYS = ("num_negatives", "schedule", "hidden_dim", "gumbel_temperature", "boundary_temperature",
                "priority_scale", "entropy_weight")
LOSS_KEYS = ("lambda_local", "lambda_match", "match_objective", "match_negatives", "match_pool", "cla_form",
             "cla_temperature", "beta", "omega_size", "negative_weight", "sampling_correction", "cla_anchors")


def add_bacl(aligner: CLIPAligner, dims: FeatureDims, *, use_bns: bool, use_cla: bool, bacl: dict | None = None,
             transformer: dict | None = None, distributed: dict | None = None) -> CLIPAligner:
    """Swap ``aligner``'s contrastive loss for BACL's (BNS and/or CLA); returns the aligner.

    ``bacl`` holds BoundarySampler and BACLLoss settings (keys ``SAMPLER_KEYS`` + ``LOSS_KEYS``,
    ``schedule`` a preset name or a dict of CurriculumSchedule fields); ``transformer`` the
    CrossModalTransformer settings; ``distributed`` the ClipLoss-style gather settings.
    """
    if not isinstance(aligner, CLIPAligner):
        raise ValueError(f"BACL plugs into an aligner with an InfoNCE term ({BACL_COMPATIBLE}), not {type(aligner).__name__}")
    bacl = dict(bacl or {})
    unknown = set(bacl) - set(SAMPLER_KEYS) - set(LOSS_KEYS)
    if unknown:
        raise ValueError(f"bacl has unknown keys {sorted(unknown)}; known: {sorted(SAMPLER_KEYS + LOSS_KEYS)}")
    sampler_settings = {k: bacl[k] for k in SAMPLER_KEYS if k in bacl}
    if isinstance(sampler_settings.get("schedule"), dict):
        sampler_settings["schedule"] = CurriculumSchedule(**sampler_settings["schedule"])
    cross_modal = None
    if use_cla:
        # BLIP already has a matching Transformer: CLA shapes that one rather than adding a second.
        cross_modal = aligner.cross_modal or cross_modal_transformer(dims, transformer)
    aligner.contrastive = BACLLoss(
        use_bns=use_bns, use_cla=use_cla, sampler=BoundarySampler(**sampler_settings) if use_bns else None,
        cross_modal=cross_modal, **{k: bacl[k] for k in LOSS_KEYS if k in bacl}, **(distributed or {}),
    )
    return aligner


def build_aligner(spec: dict, dims: FeatureDims, *, bacl: dict | None = None, transformer: dict | None = None,
                  distributed: dict | None = None) -> Aligner:
    """An aligner from a method spec ``{"aligner": name, "bns": bool, "cla": bool, "options": {...}}``.

    ``options`` are the aligner's own keyword arguments (e.g. M3-JEPA's ``num_experts``);
    ``bacl`` and ``transformer`` are the shared BACL and Transformer settings (already merged with
    the method's overrides by the caller).
    """
    name = spec.get("aligner")
    if name not in ALIGNERS:
        raise ValueError(f"aligner {name!r} is unknown; choose one of {sorted(ALIGNERS)}")
    use_bns, use_cla = bool(spec.get("bns", False)), bool(spec.get("cla", False))
    options = dict(spec.get("options", {}))
    if name == "blip":
        options = {**(transformer or {}), **options}
    try:
        aligner = ALIGNERS[name](dims, **options) if name != "zero_shot" else ZeroShotAligner()
    except TypeError as error:  # an unknown option or one of the wrong type
        raise ValueError(f"options {options} do not fit aligner {name!r}: {error}") from error
    if name in BACL_COMPATIBLE:
        gather = distributed or {}
        if use_bns or use_cla:
            return add_bacl(aligner, dims, use_bns=use_bns, use_cla=use_cla, bacl=bacl, transformer=transformer,
                            distributed=gather)
        aligner.contrastive = BACLLoss(use_bns=False, use_cla=False, **gather)
    elif use_bns or use_cla:
        raise ValueError(f"aligner {name!r} cannot take BACL (bns/cla); BACL plugs into {BACL_COMPATIBLE}")
    return aligner
