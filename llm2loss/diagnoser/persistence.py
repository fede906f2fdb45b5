"""Saving and loading a fitted LossDiagnoser: a folder of safetensors + JSON, never code.

A saved diagnoser is a directory with `weights.safetensors` (tensors only: every head parameter
as `param.<i>`, the data mean, the per-member centre and scale, the text mean when there is one,
the linear readout's weights and biases when text is read out linearly) and `diagnoser.json`
(format tag, constructor parameters, dimension, target transform, epochs, validation scores, and
the readout the fit read text with, "heads" or "linear"). A diagnoser saved before `text_readout`
existed has neither and loads with "heads", the way it answered when it was saved. A diagnoser may come from a store someone else can write, so loading checks
the JSON against the safetensors header before allocating anything (`checks`), and any unreadable
or inconsistent file is a WeightsError that says to save it again.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from llm2loss.devices import resolve_device
from llm2loss.diagnoser.checks import check_positive_int, check_saved_shapes, check_saved_vectors
from llm2loss.diagnoser.heads import MemberHeads
from llm2loss.diagnoser.readout import fitted_readout
from llm2loss.diagnoser.scoring import check_fitted
from llm2loss.errors import ConfigError, NotFoundError, WeightsError

if TYPE_CHECKING:
    from llm2loss.diagnoser.estimator import LossDiagnoser

__all__ = ["FORMAT", "load", "save"]

FORMAT = "llm2loss-diagnoser/1"


def save(d: LossDiagnoser, path: str | Path) -> Path:
    """Write `weights.safetensors` and `diagnoser.json` of fitted `d` into directory `path`."""
    check_fitted(d)
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"cannot save the diagnoser to {out}: it (or a folder above it) is "
                          "a file; give the path of a folder") from None
    tensors = {f"param.{i}": p.detach().float().cpu().numpy()
               for i, p in enumerate(d.heads_.parameters())}
    tensors["data_mean"] = d.data_mean_
    tensors["member_center"] = d.member_center_
    tensors["member_scale"] = d.member_scale_
    if d.text_mean_ is not None:
        tensors["text_mean"] = d.text_mean_
    if d.readout_weight_ is not None:
        tensors["readout_weight"] = d.readout_weight_
        tensors["readout_bias"] = d.readout_bias_
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
              str(out / "weights.safetensors"))
    meta = {"format": FORMAT, "params": d.get_params(), "dim": d.dim_,
            # what the fit read text with ("auto" resolved, whatever a later set_params says)
            "fitted_text_readout": d.text_readout_,
            "target_mean": d.target_mean_ if hasattr(d, "target_mean_") else 0.0,
            "target_std": d.target_std_ if hasattr(d, "target_std_") else 1.0,
            "n_epochs": d.n_epochs_,
            "validation_scores": d.validation_scores_}
    (out / "diagnoser.json").write_text(json.dumps(meta, indent=2))
    return out


def load(cls: type[LossDiagnoser], path: str | Path, *, device: str | None = None) -> LossDiagnoser:
    """Read a diagnoser written by `save` (no code is executed: JSON + safetensors)."""
    src = Path(path)
    meta_file, weights_file = src / "diagnoser.json", src / "weights.safetensors"
    for f in (meta_file, weights_file):
        if not f.is_file():
            raise NotFoundError(f"no saved diagnoser at {src}: {f.name} is missing; pass the "
                                f"directory that LossDiagnoser.save() wrote")
    try:
        meta = json.loads(meta_file.read_text())
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"format is not {FORMAT}")
        params = {"text_readout": "heads", **meta["params"]}  # saved before readouts: heads
        params["device"] = device
        d = cls(**params)
        d._check_params()
        d.dim_ = check_positive_int(meta["dim"], "dim")
        d.text_readout_ = fitted_readout(meta, d)
        linear = d.text_readout_ == "linear"
        # Sizes against the header first: nothing is allocated for a tampered diagnoser.json.
        check_saved_shapes(weights_file, d.n_members, d.dim_, d.arch, d.hidden, linear)
        tensors = load_file(str(weights_file))
        check_saved_vectors(tensors, src)
        d.target_mean_ = float(meta["target_mean"])
        d.target_std_ = float(meta["target_std"])
        if not (math.isfinite(d.target_mean_) and math.isfinite(d.target_std_)
                and d.target_std_ > 0):
            raise ValueError("target_mean/target_std must be finite and target_std positive")
        d.n_epochs_ = int(meta["n_epochs"])
        scores = meta.get("validation_scores")
        d.validation_scores_ = None if scores is None else [float(v) for v in scores]
        d.data_mean_ = tensors["data_mean"]
        d.text_mean_ = tensors.get("text_mean")
        d.member_center_ = tensors["member_center"]
        d.member_scale_ = tensors["member_scale"]
        d.readout_weight_ = tensors["readout_weight"] if linear else None
        d.readout_bias_ = tensors["readout_bias"] if linear else None
    except (ValueError, OSError, KeyError, TypeError, SafetensorError) as exc:
        raise WeightsError(f"saved diagnoser at {src} is unreadable or corrupt ({exc}); "
                           f"save it again from the fitted diagnoser") from exc
    d.device_ = torch.device(resolve_device(device))
    heads = MemberHeads(d.n_members, d.dim_, arch=d.arch, hidden=d.hidden)
    with torch.no_grad():
        for i, p in enumerate(heads.parameters()):
            saved = tensors.get(f"param.{i}")
            if saved is None or tuple(saved.shape) != tuple(p.shape):
                raise WeightsError(f"{weights_file} does not match its diagnoser.json "
                                   f"(tensor param.{i}); save the diagnoser again")
            p.copy_(torch.from_numpy(saved))
    d.heads_ = heads.to(d.device_).eval()
    return d
