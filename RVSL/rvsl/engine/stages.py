"""The three training stages as small step objects over one shared set of losses.

A step maps a batch to a :class:`StepResult`: the named, weighted losses of the ReID network and
generators, and the adversarial pairs it judged. Every adversarial term goes through
:meth:`StageStep.fool`, which returns the generator's term together with the (real, generated) pair
that the trainer then uses to update the same discriminator: the generator fools exactly the image
kind that the discriminator is trained on (reference defect 3).
"""

from typing import Callable, Dict, List, NamedTuple, Tuple

from torch import Tensor, nn

from ..config import CfgNode
from .. import layout
from ..losses import (consistency_loss, cr_loss, dcp_loss, lsgan_loss, midc_loss, reid_loss, translation_loss,
                      tv_loss)
from ..modeling.rvsl_model import DOMAINS, OTHER

Losses = Dict[str, Tensor]
# The image domain (the branch that reads them) of each unsupervised stage's real images, from the layout.
REAL_DOMAIN = {stage: layout.find(domain, "train").condition
               for stage, domain in layout.STAGE_REAL_DOMAIN.items() if domain}


class AdversarialPair(NamedTuple):
    """Images for one discriminator update: ``domain``'s discriminator, real examples, generated ones (detached)."""

    domain: str
    real: Tensor
    generated: Tensor


class StepResult(NamedTuple):
    """What a stage step gives the trainer."""

    losses: Losses
    adversarial: List[AdversarialPair]


class StageStep:
    """Base of the stage steps: the model, the discriminators by domain, and the loss weights."""

    def __init__(self, model: nn.Module, discriminators: nn.Module, cfg: CfgNode):
        self.model = model
        self.discriminators = discriminators
        self.weights = cfg.LOSS

    def __call__(self, batch: Dict) -> StepResult:
        raise NotImplementedError

    def render(self, f1: Tensor, r1: Tensor, domain: str) -> Tensor:
        """Translate encoder features into an image of ``domain`` (G_C for clear, G_H for hazy)."""
        return self.model.render_clear(f1, r1) if domain == "clear" else self.model.render_hazy(f1, r1)

    def fool(self, domain: str, generated: Tensor, real: Tensor) -> Tuple[Tensor, AdversarialPair]:
        """LSGAN generator term for ``generated`` against the ``domain`` discriminator, and the pair it judged."""
        term = lsgan_loss(self.discriminators[domain](generated), True)
        return term, AdversarialPair(domain, real.detach(), generated.detach())

    def synthetic(self, batch: Dict, reid: float, translation: float, ec: float,
                  prefix: str = "") -> Tuple[Losses, Dict]:
        """Supervised losses of synthetic pairs: ReID on both branches, translation to the twin, EC."""
        w = self.weights
        clear, hazy, pids = batch["clear"], batch["hazy"], batch["pid"]
        f1_c, r1_c = self.model.encode(clear, "clear")
        f1_h, r1_h = self.model.encode(hazy, "hazy")
        out_c, out_h = self.model.embed(r1_c), self.model.embed(r1_h)
        rendered = {"clear": self.render(f1_h, r1_h, "clear"), "hazy": self.render(f1_c, r1_c, "hazy")}
        losses = {
            f"{prefix}reid_clear": reid * reid_loss(out_c, pids, w.LABEL_SMOOTH, w.TRIPLET_MARGIN),
            f"{prefix}reid_hazy": reid * reid_loss(out_h, pids, w.LABEL_SMOOTH, w.TRIPLET_MARGIN),
            f"{prefix}trans_clear": translation * translation_loss(rendered["clear"], clear),
            f"{prefix}trans_hazy": translation * translation_loss(rendered["hazy"], hazy),
            f"{prefix}ec": ec * consistency_loss(out_c.global_feat, out_h.global_feat),
        }
        return losses, rendered


class SupervisedStep(StageStep):
    """Stage 1: synthetic pairs with labels, plus one discriminator per domain on the rendered images.

    The adversarial weight applies to the mean of the two generator terms, as in the reference
    (``SYN_ADV x (L_clear + L_hazy) / 2``).
    """

    def __call__(self, batch: Dict) -> StepResult:
        w = self.weights
        losses, rendered = self.synthetic(batch, w.SYN_REID, w.SYN_TRANSLATION, w.SYN_EC)
        adversarial = []
        for domain in ("clear", "hazy"):
            term, pair = self.fool(domain, rendered[domain], batch[domain])
            losses[f"adv_{domain}"] = w.SYN_ADV * term / 2
            adversarial.append(pair)
        return StepResult(losses, adversarial)


class UnsupervisedStep(StageStep):
    """Stages 2 and 3: unlabelled real images of one domain, plus the synthetic pairs as an auxiliary task.

    A real image ``x`` of ``domain`` is translated to the other domain (``t``) and back (``x''``);
    losses: EC between the ReID features of ``x`` and ``t``, the haze priors on (clear, hazy) =
    (x, t) or (t, x), cycle reconstruction of ``x``, and the other domain's discriminator on ``t``,
    whose real examples are the synthetic batch's images of that domain.
    """

    def __init__(self, model: nn.Module, discriminators: nn.Module, cfg: CfgNode, domain: str,
                 prior: Callable[[Tensor, Tensor], Tensor]):
        super().__init__(model, discriminators, cfg)
        self.domain = domain
        self.prior = prior

    def __call__(self, batch: Dict) -> StepResult:
        w = self.weights
        losses, _ = self.synthetic(batch["syn"], w.AUX_REID, w.AUX_TRANSLATION, w.AUX_EC, prefix="aux_")
        real, other = batch["real"]["img"], OTHER[self.domain]
        f1_x, r1_x = self.model.encode(real, self.domain)
        translated = self.render(f1_x, r1_x, other)
        f1_t, r1_t = self.model.encode(translated, other)
        cycled = self.render(f1_t, r1_t, self.domain)
        clear, hazy = (real, translated) if self.domain == "clear" else (translated, real)
        adv_term, pair = self.fool(other, translated, batch["syn"][other])
        losses.update({
            "real_ec": w.REAL_EC * consistency_loss(self.model.embed(r1_x).global_feat,
                                                    self.model.embed(r1_t).global_feat),
            "real_prior": w.REAL_PRIOR * self.prior(clear, hazy),
            "real_cycle": w.REAL_CYCLE * translation_loss(cycled, real),
            f"real_adv_{other}": w.REAL_ADV * adv_term,
        })
        return StepResult(losses, [pair])


def adversarial_domains(stage: str) -> Tuple[str, ...]:
    """The domains whose discriminators ``stage`` trains: both in stage 1, the real images' other domain after."""
    return DOMAINS if stage == "STAGE1" else (OTHER[REAL_DOMAIN[stage]],)


def build_step(cfg: CfgNode, model: nn.Module, discriminators: nn.Module) -> StageStep:
    """The step object of ``cfg.MODE.STAGE``."""
    w = cfg.LOSS
    if cfg.MODE.STAGE == "STAGE1":
        return SupervisedStep(model, discriminators, cfg)
    domain = REAL_DOMAIN[cfg.MODE.STAGE]
    if cfg.MODE.STAGE == "STAGE2":
        # Priors on the rendered hazy image h' of a real clear image x.
        def prior(clear: Tensor, hazy: Tensor) -> Tensor:
            return w.MIDC * midc_loss(clear, hazy) + w.CR_STAGE2 * cr_loss(clear, hazy)
        return UnsupervisedStep(model, discriminators, cfg, domain, prior)

    # STAGE3: priors on the dehazed image c' of a real hazy image x.
    def prior(clear: Tensor, hazy: Tensor) -> Tensor:
        return w.DCP * dcp_loss(clear, w.DCP_PATCH) + w.TV * tv_loss(clear) + w.CR_STAGE3 * cr_loss(clear, hazy)
    return UnsupervisedStep(model, discriminators, cfg, domain, prior)
