"""The reference code's checkpoints: key names of its stage models mapped to ours, both ways.

The reference trainers save a bare state dict of ``Stage{1,2,3}_Model``: encoders ``Ec``/``Ef``
(ResNet stem and layer1), ``Dreid`` (layer2-4), ``bottleneck`` (BNNeck), ``classifier`` (stage 1)
or ``syn_classifier`` (stages 2-3), and U-Net generators ``Dc`` (hazy to clear, our G_C) and ``Df``
(clear to hazy, our G_H) made of ``DC1``/``DC2``/``DC3`` (``double_conv`` sequences) and ``OutConv``.
The reference's ``DC2`` reads ``cat[F1, x]`` where ours reads ``cat[x, F1]``: its first convolution's
input channels are swapped on the way in and out. Any key that maps nowhere is an error naming it.
"""

from typing import Any, Dict, Mapping, Tuple

import torch

from ..utils.errors import InputError
from .weights import strip_module

# Reference prefix -> our prefix, for the parts whose inner names are the same.
_PLAIN = {"Ec.": "enc_clear.", "Ef.": "enc_hazy.", "Dreid.": "reid.", "bottleneck.": "reid.bnneck."}
_GENERATORS = {"Dc.": "gen_clear.", "Df.": "gen_hazy."}
_GEN_BLOCKS = {"DC1.double_conv.": "block1.", "DC2.double_conv.": "block2.", "DC3.double_conv.": "block3.",
               "OutConv.": "to_rgb."}
CLASSIFIER_NAMES = ("classifier", "syn_classifier")
REFERENCE_PREFIXES = tuple(_PLAIN) + tuple(_GENERATORS) + tuple(f"{c}." for c in CLASSIFIER_NAMES)
_SKIP_CONV = "block2.0.weight"  # the convolution reading cat[x, F1] (ours) / cat[F1, x] (reference)


def is_reference_state(obj: Any) -> bool:
    """Whether a loaded object looks like a reference stage model's state dict (encoders, ReID body, BNNeck)."""
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) for k in obj):
        return False
    keys = strip_module(obj)
    return all(any(k.startswith(p) for k in keys) for p in ("Ec.", "Ef.", "Dreid.", "bottleneck."))


def _swap_skip_channels(weight: torch.Tensor, first: int) -> torch.Tensor:
    """Move the first ``first`` input channels of a conv weight to the end (cat[a, b] -> cat[b, a])."""
    return torch.cat([weight[:, first:], weight[:, :first]], dim=1)


def _skip_channels(state: Mapping[str, torch.Tensor], conv1_key: str) -> int:
    """Channels of the skip feature F1: the output channels of the encoder's first convolution."""
    if conv1_key not in state:
        raise InputError(f"reference checkpoint: missing key {conv1_key!r} (needed to read the generators)")
    return int(state[conv1_key].shape[0])


def from_reference(state: Mapping[str, torch.Tensor],
                   source: str = "checkpoint") -> Tuple[Dict[str, torch.Tensor], str]:
    """Our state dict from a reference stage model's, and the reference classifier's name.

    Every key is accounted for: one that maps nowhere raises :class:`InputError` naming it and ``source``.
    """
    state = strip_module(state)
    f1 = _skip_channels(state, "Ec.conv1.weight")
    out: Dict[str, torch.Tensor] = {}
    classifier = ""
    for key, value in state.items():
        new = _map_key(key, _PLAIN) or _map_generator_key(key, _GENERATORS, _GEN_BLOCKS)
        head, _, rest = key.partition(".")
        if new is None and head in CLASSIFIER_NAMES and rest == "weight":
            if classifier and classifier != head:
                raise InputError(f"{source}: both 'classifier' and 'syn_classifier' present; expected one")
            classifier, new = head, "reid.classifier.weight"
        if new is None:
            raise InputError(f"{source}: key {key!r} is not part of a reference RVSL stage model")
        if new.endswith(_SKIP_CONV) and new.startswith("gen_"):
            value = _swap_skip_channels(value, f1)
        out[new] = value
    if not classifier:
        raise InputError(f"{source}: no 'classifier.weight' or 'syn_classifier.weight' in the reference checkpoint")
    return out, classifier


def reference_key(key: str, classifier: str = "classifier") -> str:
    """The reference name of one of our state-dict keys; ValueError if it has none."""
    if key == "reid.classifier.weight":
        return f"{classifier}.weight"
    new = (_map_generator_key(key, {v: k for k, v in _GENERATORS.items()}, {v: k for k, v in _GEN_BLOCKS.items()})
           or _map_key(key, {v: k for k, v in _PLAIN.items()}))
    if new is None:
        raise ValueError(f"key {key!r} has no reference name")
    return new


def to_reference(state: Mapping[str, torch.Tensor], classifier: str = "classifier") -> Dict[str, torch.Tensor]:
    """A reference stage model's state dict from ours (``classifier`` is "classifier" or "syn_classifier")."""
    if classifier not in CLASSIFIER_NAMES:
        raise ValueError(f"classifier must be one of {CLASSIFIER_NAMES}, got {classifier!r}")
    f1 = int(state["enc_clear.conv1.weight"].shape[0])
    out: Dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("gen_") and key.endswith(_SKIP_CONV):
            value = _swap_skip_channels(value, value.shape[1] - f1)
        out[reference_key(key, classifier)] = value
    return out


def _map_key(key: str, prefixes: Mapping[str, str]) -> Any:
    """``key`` with its prefix replaced by the longest matching entry of ``prefixes``; None if none matches."""
    for old in sorted(prefixes, key=len, reverse=True):
        if key.startswith(old):
            return prefixes[old] + key[len(old):]
    return None


def _map_generator_key(key: str, generators: Mapping[str, str], blocks: Mapping[str, str]) -> Any:
    """A generator key renamed at both levels (generator, then block); None if either level does not match."""
    outer = _map_key(key, generators)
    if outer is None:
        return None
    gen_prefix = next(generators[p] for p in generators if key.startswith(p))
    inner = _map_key(outer[len(gen_prefix):], blocks)
    return None if inner is None else gen_prefix + inner
