"""Per-sample loss of an audited model: one batched forward pass, no gradients.

The model comes from a release: its `entrypoint` ("module:function", called with
`release.metadata["entrypoint_kwargs"]` if any) returns a torch `nn.Module` or any object with
`predict_proba(inputs)`. Weights, when given, are a safetensors file or a torch state_dict read
with `torch.load(weights_only=True)`; they are loaded with `load_state_dict(strict=True)`, so a
mismatch is an error, and a pickle of arbitrary Python objects is refused. An `nn.Module` that
takes raw samples (PIL images, strings) exposes a `preprocess` callable for one sample.

Losses by task, from the model's outputs (logits for modules, probabilities for predict_proba):
multiclass -> cross-entropy, binary -> binary cross-entropy, regression -> squared error,
custom -> the release's `loss` entrypoint `fn(outputs, labels) -> per-sample losses`.
Models that cannot run here give their losses as a Parquet table (`read_precomputed_losses`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file

from llm2loss.config import ReleaseSpec
from llm2loss.devices import resolve_device
from llm2loss.entrypoints import check_allowed, current_ref
from llm2loss.errors import ConfigError, DataError, WeightsError
from llm2loss.sources.base import Shard

TASKS = ("multiclass", "binary", "regression", "custom")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
_EPS = 1e-12


def import_entrypoint(ref: str, what: str = "entrypoint") -> Callable[..., Any]:
    """The callable named by 'module:function'; ConfigError when its module is not on this
    process's allow-list (`llm2loss.entrypoints`) or does not import. A project module that
    was renamed (`entrypoints.RENAMED_MODULES`) is imported under its current name."""
    ref = current_ref(ref)
    module_name, sep, attr = ref.partition(":")
    if not sep:
        raise ConfigError(f"{what} {ref!r} must look like 'package.module:function'")
    check_allowed(ref, what)  # before the import: importing a module runs its code
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{what} {ref!r} does not import ({exc}): install the package that provides "
            f"{module_name!r} or fix the module path"
        ) from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"{what} {ref!r}: module {module_name!r} has no function {attr!r}; fix the name")
    return fn


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file or a torch state_dict; pickled objects are refused."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist: check the release's weights")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise WeightsError(
            f"refusing to load {path.name}: pickle files can run code when loaded; save the "
            "model's tensors with safetensors.torch.save_file instead"
        )
    if path.suffix.lower() == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise WeightsError(f"{path.name} is not a valid safetensors file ({exc}): re-export the weights") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError and friends
        raise WeightsError(
            f"refusing to load {path.name}: it is not a plain tensor state_dict "
            f"(torch.load(weights_only=True) failed: {str(exc).splitlines()[0][:160]}); save "
            "model.state_dict() with safetensors.torch.save_file instead"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path.name} does not hold a state_dict of tensors: save model.state_dict()")
    return state


class AuditedModel:
    """The audited model, loaded once: maps a list of samples to outputs.

    Outputs are logits (`kind == "logits"`) for torch modules and probabilities
    (`kind == "proba"`) for objects with `predict_proba`.
    """

    def __init__(self, model: Any, *, name: str = "model", loss: str | None = None) -> None:
        if isinstance(model, torch.nn.Module):
            self.kind = "logits"
            model.eval()
        elif callable(getattr(model, "predict_proba", None)):
            self.kind = "proba"
        else:
            raise ConfigError(
                f"{name} returned a {type(model).__name__}, which is neither a torch nn.Module nor "
                "has predict_proba: return one of those from the entrypoint"
            )
        self.model = model
        self.name = name
        self.loss = loss  # per-sample loss entrypoint for task "custom"

    def outputs(self, inputs: list[Any], *, batch_size: int = 256) -> np.ndarray:
        """Model outputs for `inputs`, batched, without gradients; float64 array."""
        chunks = []
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start : start + batch_size]
            chunks.append(self._forward(batch))
        if not chunks:
            return np.zeros((0,), dtype=np.float64)
        return np.concatenate(chunks)

    def _forward(self, batch: list[Any]) -> np.ndarray:
        if self.kind == "proba":
            return np.asarray(self.model.predict_proba(batch), dtype=np.float64)
        with torch.no_grad():
            out = self.model(self._tensor(batch))
        return out.detach().float().cpu().numpy().astype(np.float64)

    def _tensor(self, batch: list[Any]) -> torch.Tensor:
        preprocess = getattr(self.model, "preprocess", None)
        if callable(preprocess):
            x = torch.stack([torch.as_tensor(preprocess(sample)) for sample in batch])
        elif all(isinstance(s, (torch.Tensor, np.ndarray)) for s in batch):
            x = torch.stack([torch.as_tensor(s) for s in batch])
        else:
            raise ConfigError(
                f"{self.name} is an nn.Module but the samples are {type(batch[0]).__name__}: give the "
                "module a `preprocess` attribute that turns one sample into a tensor"
            )
        param = next(self.model.parameters(), None)
        return x.to(param.device) if param is not None else x


def load_model(release: ReleaseSpec, *, weights_path: Path | None, device: str | None = None) -> AuditedModel:
    """Build the release's model from its entrypoint and load its weights (if any).

    A torch module is moved to `device` (None: cuda when present, else cpu).
    """
    factory = import_entrypoint(release.entrypoint)
    kwargs = release.metadata.get("entrypoint_kwargs", {})
    model = factory(**kwargs)
    path = weights_path
    if path is None and release.weights:
        local = Path(release.weights).expanduser()
        if not local.is_file():
            raise WeightsError(
                f"weights {release.weights!r} of {release.ref} are not a local file: fetch them "
                "from the store first and pass weights_path"
            )
        path = local
    if path is not None:
        _load_weights(model, read_state_dict(Path(path)), release.ref)
    if isinstance(model, torch.nn.Module):
        model.to(resolve_device(device))
    return AuditedModel(model, name=release.entrypoint, loss=release.loss)


def _load_weights(model: Any, state: dict[str, torch.Tensor], ref: str) -> None:
    load = getattr(model, "load_state_dict", None)
    if not callable(load):
        raise WeightsError(
            f"{ref} has weights but its model ({type(model).__name__}) has no load_state_dict: "
            "drop the weights or give the model a load_state_dict method"
        )
    try:
        load(state, strict=True)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise WeightsError(
            f"the weights do not match the model of {ref}: {' '.join(str(exc).split())[:400]}; use the "
            "weights saved from this architecture"
        ) from None


def compute_losses(model: AuditedModel, shard: Shard, *, task: str, batch_size: int = 256,
                   loss: str | None = None) -> pa.Table:
    """Per-sample loss over a shard: a table id, loss, label, pred, correct.

    `loss` names the per-sample loss entrypoint for task "custom" (default: the release's).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: choose one of {list(TASKS)}")
    outputs = model.outputs(shard.inputs, batch_size=batch_size)
    _check_finite(outputs.reshape(len(shard.ids), -1).max(axis=1) if outputs.size else outputs, shard.ids,
                  what="output")
    labels = np.asarray(shard.labels)
    if task == "multiclass":
        losses, pred = _multiclass(outputs, labels, model.kind)
    elif task == "binary":
        losses, pred = _binary(outputs, labels, model.kind)
    elif task == "regression":
        losses, pred = _regression(outputs, labels)
    else:
        losses, pred = _custom(outputs, labels, loss or model.loss)
    _check_finite(np.asarray(losses, dtype=np.float64), shard.ids, what="loss")
    correct = None if task == "regression" or pred.dtype.kind == "f" else pred == labels
    return pa.table(
        {
            "id": pa.array(shard.ids, pa.string()),
            "loss": pa.array(np.asarray(losses, dtype=np.float64)),
            "label": pa.array(labels),
            "pred": pa.array(pred),
            "correct": pa.array(correct, pa.bool_()) if correct is not None
            else pa.nulls(len(shard.ids), pa.bool_()),
        }
    )


def _check_finite(values: np.ndarray, ids: list[str], *, what: str) -> None:
    """DataError naming the samples whose model output or loss is NaN or infinite."""
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        examples = [ids[i] for i in bad[:3]]
        raise DataError(
            f"the model gives a NaN or infinite {what} for {bad.size} of {len(ids)} samples "
            f"(e.g. {examples}): check that the model's outputs are finite for these inputs"
        )


def _class_labels(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    if labels.dtype.kind not in "iu" or (labels.size and (labels.min() < 0 or labels.max() >= n_classes)):
        bad = sorted(set(np.asarray(labels).tolist()) - set(range(n_classes)))[:5]
        raise DataError(
            f"labels {bad} are outside the model's {n_classes} classes (0..{n_classes - 1}): "
            "check the dataset's labels against the release's classes"
        )
    return torch.as_tensor(labels, dtype=torch.long)


def _multiclass(outputs: np.ndarray, labels: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    if outputs.ndim != 2:
        raise DataError(f"a multiclass model must output (n, classes), got shape {outputs.shape}")
    target = _class_labels(labels, outputs.shape[1])
    scores = torch.as_tensor(outputs)
    if kind == "proba":
        scores = torch.log(scores.clamp_min(_EPS))  # cross-entropy of probabilities = NLL of log p
        losses = F.nll_loss(scores, target, reduction="none")
    else:
        losses = F.cross_entropy(scores, target, reduction="none")
    return losses.numpy(), outputs.argmax(axis=1).astype(np.int64)


def _binary(outputs: np.ndarray, labels: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    score = outputs[:, -1] if outputs.ndim == 2 and outputs.shape[1] in (1, 2) else outputs
    if score.ndim != 1:
        raise DataError(f"a binary model must output (n,), (n, 1) or (n, 2), got {outputs.shape}")
    target = _class_labels(labels, 2).double()
    if kind == "proba":
        p = torch.as_tensor(score).clamp(_EPS, 1 - _EPS)
        losses = F.binary_cross_entropy(p, target, reduction="none")
        pred = (score >= 0.5).astype(np.int64)
    elif outputs.ndim == 2 and outputs.shape[1] == 2:  # two logits: softmax cross-entropy
        losses = F.cross_entropy(torch.as_tensor(outputs), target.long(), reduction="none")
        pred = outputs.argmax(axis=1).astype(np.int64)
    else:
        losses = F.binary_cross_entropy_with_logits(torch.as_tensor(score), target, reduction="none")
        pred = (score >= 0).astype(np.int64)
    return losses.numpy(), pred


def _regression(outputs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = outputs.reshape(len(outputs), -1)
    if pred.shape[1] != 1:
        raise DataError(f"a regression model must output one value per sample, got {outputs.shape}")
    pred = pred[:, 0]
    target = labels.astype(np.float64)
    return F.mse_loss(torch.as_tensor(pred), torch.as_tensor(target), reduction="none").numpy(), pred


def _custom(outputs: np.ndarray, labels: np.ndarray, loss: str | None) -> tuple[np.ndarray, np.ndarray]:
    if not loss:
        raise ConfigError("task 'custom' needs the release's `loss` entrypoint ('module:function')")
    fn = import_entrypoint(loss, "loss entrypoint")
    losses = np.asarray(fn(outputs, labels), dtype=np.float64).reshape(-1)
    if losses.shape != (len(labels),):
        raise DataError(f"loss entrypoint {loss!r} returned {losses.shape[0]} values for {len(labels)} samples")
    pred = outputs.argmax(axis=1).astype(np.int64) if outputs.ndim == 2 else outputs.astype(np.float64)
    return losses, pred


def read_precomputed_losses(path: Path | str, *, ids: list[str] | None = None) -> pa.Table:
    """Losses made elsewhere: Parquet with id, loss (optional label, pred, correct).

    With `ids`, the table is returned in that order and every id must be present.
    """
    try:
        table = pq.read_table(str(path))
    except (OSError, ValueError) as exc:
        raise DataError(f"could not read precomputed losses {str(path)!r} ({exc}): give a Parquet file") from None
    missing_cols = {"id", "loss"} - set(table.column_names)
    if missing_cols:
        raise DataError(
            f"precomputed losses {str(path)!r} lack column(s) {sorted(missing_cols)}; its columns "
            f"are {table.column_names}: write id and loss"
        )
    frame = table.to_pandas()
    frame["id"] = frame["id"].astype(str)
    if frame["id"].duplicated().any():
        raise DataError(f"precomputed losses {str(path)!r} repeat ids: keep one row per id")
    loss = frame["loss"].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(loss)):
        raise DataError(f"precomputed losses {str(path)!r} contain NaN or infinite losses: fix or drop those rows")
    if ids is not None:
        absent = sorted(set(ids) - set(frame["id"]))
        if absent:
            raise DataError(
                f"{len(absent)} sample id(s) have no precomputed loss, e.g. {absent[:3]}: "
                "compute losses for the whole dataset"
            )
        frame = frame.set_index("id").loc[ids].reset_index()
    for column in ("label", "pred", "correct"):
        if column not in frame:
            frame[column] = None
    frame["correct"] = frame["correct"].astype("boolean")
    return pa.Table.from_pandas(frame[["id", "loss", "label", "pred", "correct"]], preserve_index=False)
