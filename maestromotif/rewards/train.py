"""Training of the skill reward models from pairwise AI feedback (method.md 6).

Per skill: fit a :class:`RewardNet` with the pairwise cross-entropy between
softmax(r_first, r_second) and the label's target ([1, 0], [0, 1], or [1/2, 1/2]
for ties and, by default, unparsed answers), then score the unique (message,
depth change) transitions to get the normalization (mean, std), the 19
quantiles of the normalized reward and the skill's threshold, and write a
bundle. Deviations from the original, on purpose: shuffled batches, a held-out
split, torch seeded (D15, D21), statistics computed once over all unique
transitions with no NaN on any dataset size (D22), CPU or GPU from the same code.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from maestromotif.rewards import bundles as bundle_io
from maestromotif.rewards.constants import QUANTILE_LEVELS, SKILL_NAMES, THRESHOLD_LEVELS
from maestromotif.rewards.data import (
    LABEL_FIRST,
    LABEL_SECOND,
    LABEL_TIE,
    LABEL_UNPARSED,
    PreferenceData,
    available_skills,
    concat_preferences,
    label_provenance,
    load_preferences,
)
from maestromotif.rewards.model import MESSAGE_LENGTH, RewardNet, pick_device

log = logging.getLogger(__name__)

MIN_STD = 1e-6
"""Floor of the normalization std: a model that scores every transition alike must not divide by 0."""


class TrainConfig(BaseModel):
    """Reward-training settings; defaults are the method's (Adam 1e-5, batch 1000, 20 epochs, seed 777)."""

    model_config = ConfigDict(extra="forbid")

    learning_rate: float = Field(1e-5, gt=0)
    batch_size: int = Field(1000, ge=1)
    epochs: int = Field(20, ge=1)
    seed: int = 777
    val_fraction: float = Field(0.05, ge=0.0, lt=1.0)
    unparsed: Literal["tie", "drop"] = "tie"
    """Label 3 (no verdict): count as a tie (the method's choice) or drop the pair."""
    shuffle: bool = True
    """Shuffle pairs every epoch (the original used contiguous batches)."""
    device: str = "auto"
    score_batch_size: int = Field(4096, ge=1)
    threads: int | None = Field(None, ge=1)


@dataclass
class TrainResult:
    skill: str
    model: RewardNet
    meta: bundle_io.BundleMeta
    weights: bytes
    report: dict[str, Any]
    plot_png: bytes
    bundle_dir: Path | None = None
    history: dict[str, list[float]] = field(default_factory=dict)


def preference_targets(labels: np.ndarray, unparsed: Literal["tie", "drop"]) -> tuple[np.ndarray, np.ndarray]:
    """(keep mask [N], probability that the first transition is preferred [N])."""
    target = np.full(labels.shape, 0.5, dtype=np.float32)
    target[labels == LABEL_FIRST] = 1.0
    target[labels == LABEL_SECOND] = 0.0
    keep = np.ones(labels.shape, dtype=bool) if unparsed == "tie" else labels != LABEL_UNPARSED
    return keep, target


def pairwise_loss(rewards: torch.Tensor, target_first: torch.Tensor) -> torch.Tensor:
    """Cross-entropy between softmax(r1, r2) and (t, 1 - t), averaged over pairs. rewards: [B, 2]."""
    log_p = F.log_softmax(rewards, dim=1)
    return -(target_first * log_p[:, 0] + (1.0 - target_first) * log_p[:, 1]).mean()


def heldout_mask(pair_ids: np.ndarray, fraction: float) -> np.ndarray:
    """True for held-out pairs: chosen by a hash of the pair id, so the split is stable as data grows."""
    if fraction <= 0:
        return np.zeros(len(pair_ids), dtype=bool)
    cut = int(round(fraction * 10_000))
    buckets = np.fromiter(
        (int.from_bytes(hashlib.sha256(str(p).encode()).digest()[:4], "little") % 10_000 for p in pair_ids),
        dtype=np.int64,
        count=len(pair_ids),
    )
    return buckets < cut


@torch.no_grad()
def score_transitions(
    model: RewardNet, messages: np.ndarray, stat_changes: np.ndarray, *, batch_size: int = 4096
) -> np.ndarray:
    """Raw rewards float32 [M] of M transitions (uint8 [M, 256], float32 [M, 5]), in batches."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = np.empty(len(messages), dtype=np.float32)
    for start in range(0, len(messages), batch_size):
        stop = start + batch_size
        m = torch.from_numpy(np.ascontiguousarray(messages[start:stop])).to(device)
        s = torch.from_numpy(np.ascontiguousarray(stat_changes[start:stop])).to(device)
        out[start:stop] = model(m, s).float().cpu().numpy()
    model.train(was_training)
    return out


def unique_transitions(messages: np.ndarray, depth_change: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique (message, depth change) rows: (uint8 [U, 256], float32 [U, 5])."""
    key = np.concatenate([messages.reshape(-1, MESSAGE_LENGTH), (depth_change.reshape(-1, 1) + 1).astype(np.uint8)], axis=1)
    key = np.ascontiguousarray(key)
    unique = np.unique(key.view(np.dtype((np.void, key.shape[1]))).ravel())
    rows = unique.view(np.uint8).reshape(-1, MESSAGE_LENGTH + 1)
    stats = np.zeros((len(rows), 5), dtype=np.float32)
    stats[:, 0] = rows[:, MESSAGE_LENGTH].astype(np.float32) - 1.0
    return np.ascontiguousarray(rows[:, :MESSAGE_LENGTH]), stats


def normalization(
    model: RewardNet, data: PreferenceData, skill: str, *, batch_size: int = 4096
) -> dict[str, Any]:
    """Mean, std, 19 quantiles of the normalized reward and the threshold, over unique transitions."""
    messages, stats = unique_transitions(data.messages, data.depth_change)
    if len(messages) == 0:
        raise ValueError(f"{skill}: no transitions to compute the normalization on")
    raw = score_transitions(model, messages, stats, batch_size=batch_size).astype(np.float64)
    mean = float(raw.mean())
    std = max(float(raw.std()), MIN_STD)
    normalized = (raw - mean) / std
    quantiles = np.quantile(normalized, QUANTILE_LEVELS)
    level = THRESHOLD_LEVELS[skill]
    threshold = float(quantiles[QUANTILE_LEVELS.index(level)])
    return {
        "mean": mean,
        "std": std,
        "quantiles": [float(q) for q in quantiles],
        "threshold": threshold,
        "threshold_level": level,
        "num_unique_transitions": int(len(messages)),
    }


def _accuracy(rewards: np.ndarray, labels: np.ndarray) -> float | None:
    """Agreement with decisive labels (0/1); equal rewards count half. None if no decisive label."""
    decisive = (labels == LABEL_FIRST) | (labels == LABEL_SECOND)
    if not decisive.any():
        return None
    r, y = rewards[decisive], labels[decisive]
    predicted_first = r[:, 0] > r[:, 1]
    tied = r[:, 0] == r[:, 1]
    correct = np.where(tied, 0.5, (predicted_first == (y == LABEL_FIRST)).astype(np.float64))
    return float(correct.mean())


def evaluate(model: RewardNet, data: PreferenceData, config: TrainConfig) -> dict[str, float | None]:
    """Loss (with the config's label handling) and accuracy against decisive labels."""
    if len(data) == 0:
        return {"loss": None, "accuracy": None, "pairs": 0}
    raw = score_transitions(
        model, data.messages.reshape(-1, MESSAGE_LENGTH), data.stat_changes().reshape(-1, 5),
        batch_size=config.score_batch_size,
    ).reshape(-1, 2)
    keep, target = preference_targets(data.labels, config.unparsed)
    loss = None
    if keep.any():
        loss = float(pairwise_loss(torch.from_numpy(raw[keep]), torch.from_numpy(target[keep])))
    return {"loss": loss, "accuracy": _accuracy(raw, data.labels), "pairs": int(len(data))}


def _plot(history: dict[str, list[float]], skill: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    steps = np.arange(1, len(history["batch_loss"]) + 1)
    ax_loss.plot(steps, history["batch_loss"], alpha=0.35, label="train (batch)")
    epoch_steps = np.asarray(history["epoch_step"], dtype=float)
    ax_loss.plot(epoch_steps, history["train_loss"], marker="o", label="train (epoch mean)")
    if any(v is not None for v in history["val_loss"]):
        ax_loss.plot(epoch_steps, [np.nan if v is None else v for v in history["val_loss"]], marker="s", label="held-out")
    ax_loss.axhline(math.log(2), color="grey", linestyle=":", label="chance (ln 2)")
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("pairwise cross-entropy")
    ax_loss.legend()
    for key, name in (("train_accuracy", "train"), ("val_accuracy", "held-out")):
        values = [np.nan if v is None else v for v in history[key]]
        ax_acc.plot(np.arange(1, len(values) + 1), values, marker="o", label=name)
    ax_acc.axhline(0.5, color="grey", linestyle=":")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy vs decisive labels")
    ax_acc.legend()
    fig.suptitle(f"reward model: {skill}")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def train_skill(
    data: PreferenceData,
    skill: str,
    config: TrainConfig | None = None,
    *,
    progress: bool = True,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Fit one skill's reward model on labelled pairs and compute its normalization."""
    config = config or TrainConfig()
    if skill not in SKILL_NAMES:
        raise ValueError(f"skill: unknown skill {skill!r}")
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    torch.manual_seed(config.seed)  # model init and everything stochastic in torch (D15)
    # Bit-exact repeats on CPU; on CUDA, atomics in the embedding and max-pool backward passes make
    # seeded runs differ in the last bits (measured on an H200), which is accepted.
    generator = torch.Generator().manual_seed(config.seed)

    held = heldout_mask(data.pair_ids, config.val_fraction)
    train_data, val_data = data.subset(np.flatnonzero(~held)), data.subset(np.flatnonzero(held))
    keep, target = preference_targets(train_data.labels, config.unparsed)
    fit = train_data.subset(np.flatnonzero(keep))
    fit_target = target[keep]
    if len(fit) == 0:
        raise ValueError(f"{skill}: no training pairs left (after the held-out split and label handling)")

    model = RewardNet().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    # Whole training set on the device once (a 200k-pair set is ~100 MB of message bytes).
    messages = torch.from_numpy(fit.messages).to(device)
    depth = torch.from_numpy(fit.depth_change).to(device)
    targets = torch.from_numpy(fit_target).to(device)
    n = len(fit)
    batches_per_epoch = math.ceil(n / config.batch_size)
    history: dict[str, list[Any]] = {
        "batch_loss": [], "train_loss": [], "val_loss": [], "train_accuracy": [], "val_accuracy": [], "epoch_step": []
    }
    started = time.perf_counter()
    bar = tqdm(total=config.epochs * batches_per_epoch, desc=f"train {skill}", disable=not progress, unit="batch")
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(n, generator=generator) if config.shuffle else torch.arange(n)
        order = order.to(device)
        epoch_loss = 0.0
        correct = 0.0
        decisive = 0
        for start in range(0, n, config.batch_size):
            idx = order[start : start + config.batch_size]
            b = len(idx)
            stats = torch.zeros(b * 2, 5, device=device)
            stats[:, 0] = depth[idx].reshape(-1)
            rewards = model(messages[idx].reshape(b * 2, MESSAGE_LENGTH), stats).view(b, 2)
            t = targets[idx]
            loss = pairwise_loss(rewards, t)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"{skill}: loss became {value} at epoch {epoch + 1}")
            history["batch_loss"].append(value)
            epoch_loss += value * b
            with torch.no_grad():  # running accuracy on decisive labels, from the batch's own outputs
                is_decisive = t != 0.5
                hit = (rewards[:, 0] > rewards[:, 1]) == (t > 0.5)
                correct += float((hit & is_decisive).sum())
                decisive += int(is_decisive.sum())
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{value:.4f}")
        val = evaluate(model, val_data, config)
        model.train()
        history["train_loss"].append(epoch_loss / n)
        history["train_accuracy"].append(correct / decisive if decisive else None)
        history["val_loss"].append(val["loss"])
        history["val_accuracy"].append(val["accuracy"])
        history["epoch_step"].append(len(history["batch_loss"]))
        if on_epoch is not None:
            on_epoch(epoch + 1, {k: v[-1] for k, v in history.items() if k != "batch_loss"})
    bar.close()
    train_seconds = time.perf_counter() - started

    model.eval()
    final_train = evaluate(model, train_data, config)
    final_val = evaluate(model, val_data, config)
    norm = normalization(model, data, skill, batch_size=config.score_batch_size)
    counts = {str(k): int((data.labels == k).sum()) for k in (LABEL_FIRST, LABEL_SECOND, LABEL_TIE, LABEL_UNPARSED)}
    metrics = {
        "train_accuracy": final_train["accuracy"],
        "train_loss": final_train["loss"],
        "val_accuracy": final_val["accuracy"],
        "val_loss": final_val["loss"],
        "train_pairs": int(len(train_data)),
        "fit_pairs": int(n),
        "val_pairs": int(len(val_data)),
        "label_counts": counts,
    }
    meta, weights = bundle_io.make_meta(
        skill,
        model,
        mean=norm["mean"],
        std=norm["std"],
        quantiles=norm["quantiles"],
        threshold=norm["threshold"],
        num_unique_transitions=norm["num_unique_transitions"],
        config=config.model_dump(),
        metrics=metrics,
    )
    report = {
        "skill": skill,
        "bundle_version": meta.version,
        "device": str(device),
        "train_seconds": round(train_seconds, 3),
        "iterations": len(history["batch_loss"]),
        "config": config.model_dump(),
        "metrics": metrics,
        "normalization": norm,
        "epochs": [
            {
                "epoch": i + 1,
                "train_loss": history["train_loss"][i],
                "train_accuracy": history["train_accuracy"][i],
                "val_loss": history["val_loss"][i],
                "val_accuracy": history["val_accuracy"][i],
            }
            for i in range(config.epochs)
        ],
    }
    return TrainResult(
        skill=skill,
        model=model,
        meta=meta,
        weights=weights,
        report=report,
        plot_png=_plot(history, skill),
        history=history,
    )


def save_result(result: TrainResult, out_dir: str | Path) -> Path:
    """Write the bundle (atomically, manifest updated) with its report JSON and loss-curve PNG."""
    extra = {
        "report.json": json.dumps(result.report, indent=2, sort_keys=True).encode(),
        "loss_curve.png": result.plot_png,
    }
    result.bundle_dir = bundle_io.write_bundle(out_dir, result.meta, result.weights, extra_files=extra)
    return result.bundle_dir


def train_reward_models(
    pairs_dir: str | Path,
    labels_dir: str | Path,
    out_dir: str | Path,
    skills: Sequence[str] | Literal["all"] = "all",
    config: TrainConfig | None = None,
    *,
    progress: bool = True,
    extra_rounds: Sequence[tuple[str | Path, str | Path]] = (),
) -> list[TrainResult]:
    """Train and save one bundle per requested skill ("all": every skill with labels).

    ``extra_rounds``: more (pairs, labels) folders (later collection rounds) whose pairs are
    added to the first's; each bundle's report lists every round's label provenance.
    """
    config = config or TrainConfig()
    if skills == "all":
        chosen = available_skills(labels_dir)
        if not chosen:
            raise ValueError(f"labels: {labels_dir} has no label folder for any skill ({', '.join(SKILL_NAMES)})")
    else:
        chosen = list(skills)
        for skill in chosen:
            if skill not in SKILL_NAMES:
                raise ValueError(f"skill: unknown skill {skill!r}; expected one of {', '.join(SKILL_NAMES)} or all")
    results = []
    rounds = [(pairs_dir, labels_dir), *extra_rounds]
    for skill in chosen:
        parts = [load_preferences(p, lab, skill) for p, lab in rounds]
        data = parts[0] if len(parts) == 1 else concat_preferences(parts)
        log.info("%s: %d labelled pairs", skill, len(data))
        result = train_skill(data, skill, config, progress=progress)
        # Which labels the model learnt from: the LLM's alone or with the hand-coded prior (issue 14).
        result.report["labels"] = [label_provenance(lab, skill) | {"pairs": str(p), "labels": str(lab),
                                                                   "num_pairs": len(part)}
                                   for (p, lab), part in zip(rounds, parts, strict=True)]
        result.report["label_source"] = "+".join(sorted({e["label_source"] for e in result.report["labels"]}))
        save_result(result, out_dir)
        results.append(result)
    return results
