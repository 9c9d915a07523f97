"""Driving sample-factory 2.1.1's APPO ``Learner`` from our own process.

We use SF2's learner (losses, V-trace, optimizer, checkpoints) but none of its runner,
samplers or batchers: trajectories come from our actors through the learner service.
The recipe (checked, see docs dependencies.md): ``parse_sf_args`` + ``parse_full_cfg`` +
``preprocess_cfg``; a hand-built ``EnvInfo`` with a gymnasium ``Dict`` observation space;
an int32 policy-version tensor and a ``ParameterServer``; then ``Learner.init()``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from maestromotif.fileio import atomic_write_bytes, atomic_write_text
from maestromotif.models.policy import (
    get_preset,
    policy_action_space,
    policy_observation_space,
    register_policy_model,
)
from maestromotif.training.settings import TrainingSettings

POLICY_ID = 0
EXTRA_KEY = "maestromotif"  # our additions to SF2's checkpoint dict
MANIFEST_NAME = "manifest.json"
CORRUPT_SUFFIX = ".corrupt"  # an unreadable checkpoint is renamed so, and never chosen again
# Keys every checkpoint dict must hold (SF2's _load_state reads them).
_CHECKPOINT_KEYS = ("train_step", "env_steps", "model", "optimizer")

log = logging.getLogger("maestromotif.training.sf2")


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, permissions); the previous one is kept."""


def checkpoint_files(folder: str | os.PathLike, prefix: str = "checkpoint") -> list[str]:
    """Finished checkpoint files, oldest first.

    Only ``<prefix>_*.pth``: SF2's own temp name (``checkpoint_temp``, left by a writer killed
    mid-save) and set-aside ``*.corrupt`` files also match ``checkpoint_*``; SF2 2.1.1 would sort
    ``checkpoint_temp`` last and try to resume from that half-written file.
    """
    import glob

    return sorted(f for f in glob.glob(os.path.join(folder, f"{prefix}_*")) if f.endswith(".pth"))


def remove_stale_temp_files(folder: str | os.PathLike) -> list[str]:
    """Delete temp files of checkpoint writes that never finished (a killed learner); returns them."""
    import glob

    folder = str(folder)
    stale = glob.glob(os.path.join(folder, ".checkpoint_*.tmp")) + glob.glob(os.path.join(folder, "*_temp"))
    for f in stale:
        try:
            os.unlink(f)
            log.warning("checkpoint: removed %s, left by a write that never finished", f)
        except FileNotFoundError:
            pass
    return stale


def load_checkpoint_with_fallback(checkpoints: list[str], device: Any) -> tuple[dict[str, Any], str, list[str]] | None:
    """Load the newest readable checkpoint; returns (dict, path, unreadable newer files) or None if none.

    A newer file that cannot be loaded (truncated, garbage, not a checkpoint) is logged with its
    name and the reason, renamed to ``<file>.corrupt`` (so that neither a later resume nor SF2's
    rotation picks it), and the previous one is used. If no file loads, ValueError names them all
    and nothing is renamed: starting from scratch would silently reset the run.
    """
    if not checkpoints:
        return None
    bad: list[tuple[str, str]] = []
    for path in reversed(checkpoints):
        try:
            # weights_only: no code runs from a checkpoint file
            data = torch.load(path, map_location=device, weights_only=True)
            if not isinstance(data, dict) or any(k not in data for k in _CHECKPOINT_KEYS):
                missing = [k for k in _CHECKPOINT_KEYS if not isinstance(data, dict) or k not in data]
                raise ValueError(f"not a policy checkpoint (missing {missing})")
        except Exception as exc:  # noqa: BLE001 - any unreadable file: report it and try the previous one
            log.error("checkpoint: cannot load %s: %s; trying the previous checkpoint", path, exc)
            bad.append((path, f"{type(exc).__name__}: {exc}"))
            continue
        for b, _ in bad:
            try:
                os.replace(b, b + CORRUPT_SUFFIX)
            except OSError as exc:
                log.error("checkpoint: cannot set aside %s: %s", b, exc)
        if bad:
            log.warning("checkpoint: resumed from %s; set aside %d unreadable newer file(s) as *%s",
                        path, len(bad), CORRUPT_SUFFIX)
        return data, path, [b for b, _ in bad]
    raise ValueError("checkpoint: no readable checkpoint: " + "; ".join(f"{p}: {why}" for p, why in bad))


def quiet_sf2_logs(level: int = logging.WARNING) -> None:
    """SF2 logs every model build and checkpoint at INFO/DEBUG; keep services' logs readable."""
    from sample_factory.utils.utils import log

    log.setLevel(level)


def patch_sf2_vtrace_summaries() -> None:
    """Fix SF2 2.1.1's V-trace crash: summaries read ``mb.advantages``, which only GAE fills.

    Fixed upstream after 2.1.1 (no release). Zero advantages are given to the summary only
    (its adv_* figures are meaningless). Applied wherever our model is built, so SF2's own
    runner processes (spawned) get it too.
    """
    from sample_factory.algo.learning.learner import Learner

    if getattr(Learner, "_maestromotif_vtrace_fix", False):
        return
    original = Learner._record_summaries

    def _record_summaries(self: Any, train_loop_vars: Any) -> Any:
        if "advantages" not in train_loop_vars.mb:
            train_loop_vars.mb["advantages"] = torch.zeros_like(train_loop_vars.mb["rewards"])
        return original(self, train_loop_vars)

    Learner._record_summaries = _record_summaries
    Learner._maestromotif_vtrace_fix = True


def build_sf2_config(settings: TrainingSettings, train_dir: str | os.PathLike, experiment: str) -> Any:
    """SF2 config with the method's hyperparameters (method.md 7)."""
    from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args

    preset = get_preset(settings.resolved_preset())
    device = settings.resolved_device()
    argv = [
        "--env=maestromotif_nethack",
        f"--experiment={experiment}",
        f"--train_dir={Path(train_dir)}",
        f"--device={'gpu' if device.startswith('cuda') else 'cpu'}",
        f"--seed={settings.seed}",
        "--with_vtrace=True",
        "--vtrace_rho=1.0",
        "--vtrace_c=1.0",
        f"--rollout={settings.rollout}",
        f"--recurrence={settings.rollout}",
        f"--batch_size={settings.batch_size}",
        "--num_batches_per_epoch=1",
        f"--num_epochs={settings.num_epochs}",
        f"--max_policy_lag={settings.max_policy_lag}",
        f"--gamma={settings.gamma}",
        f"--ppo_clip_ratio={settings.ppo_clip_ratio}",
        f"--ppo_clip_value={settings.ppo_clip_value}",
        f"--value_loss_coeff={settings.value_loss_coeff}",
        f"--exploration_loss_coeff={settings.entropy_coeff}",
        "--exploration_loss=entropy",
        f"--learning_rate={settings.learning_rate}",
        "--lr_schedule=constant",
        f"--adam_eps={settings.adam_eps}",
        f"--max_grad_norm={settings.max_grad_norm}",
        "--reward_scale=1.0",  # our rewards arrive already shaped
        "--reward_clip=1000000.0",
        "--value_bootstrap=False",
        "--normalize_returns=False",
        "--normalize_input=False",  # only the image is scaled (inside the model)
        "--obs_scale=1.0",
        "--use_rnn=True",
        "--rnn_type=gru",
        f"--rnn_size={preset.core}",
        "--rnn_num_layers=1",
        "--decoder_mlp_layers",  # empty: heads sit directly on the GRU output
        "--policy_initialization=orthogonal",
        "--actor_critic_share_weights=True",
        f"--keep_checkpoints={settings.keep_checkpoints}",
        "--num_policies=1",
    ]
    parser, _ = parse_sf_args(argv)
    parser.add_argument("--policy_preset", type=str, default=preset.name)
    cfg = parse_full_cfg(parser, argv + [f"--policy_preset={preset.name}"])
    return cfg


def build_env_info() -> Any:
    from sample_factory.algo.utils.env_info import EnvInfo

    return EnvInfo(
        obs_space=policy_observation_space(),
        action_space=policy_action_space(),
        num_agents=1,
        gpu_actions=False,
        gpu_observations=False,
        action_splits=[],
        all_discrete=True,
        frameskip=1,
    )


def _rng_state() -> dict[str, Any]:
    # only tensors and plain types, so checkpoints load with torch.load(weights_only=True)
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _make_learner_class():  # noqa: ANN202 - SF2 is imported lazily
    from sample_factory.algo.learning.learner import Learner

    class MaestroLearner(Learner):
        """SF2's Learner plus our checkpoint extras (counters, RNG, preset, config hash)."""

        extra_state: dict[str, Any]
        loaded_extra: dict[str, Any] | None = None
        loaded_from: str | None = None
        unreadable: list[str] = []
        last_saved: str | None = None

        @staticmethod
        def get_checkpoints(checkpoints_dir: str, pattern: str = "checkpoint_*") -> list[str]:
            return checkpoint_files(checkpoints_dir, pattern.rstrip("*").rstrip("_"))

        def load_from_checkpoint(self, policy_id: int, load_progress: bool = True) -> None:
            # SF2 logs a failed load and silently starts from scratch; here an unreadable newest
            # file falls back to the previous one (named in the log), and none readable stops.
            folder = self.checkpoint_dir(self.cfg, policy_id)
            remove_stale_temp_files(folder)
            found = load_checkpoint_with_fallback(self.get_checkpoints(folder), self.device)
            if found is None:
                return
            data, self.loaded_from, self.unreadable = found
            self._load_state(data, load_progress=load_progress)

        def _save_impl(self, name_prefix: str, name_suffix: str, keep_checkpoints: int, verbose: bool = True) -> bool:
            # SF2's own writer leaves a half-written ``checkpoint_temp`` (which its glob then
            # takes for the newest checkpoint) when the disk fills or the process is killed.
            if not self.is_initialized:
                return False
            folder = self.checkpoint_dir(self.cfg, self.policy_id)
            path = os.path.join(folder, f"{name_prefix}_{self.train_step:09d}_{self.env_steps}{name_suffix}.pth")
            buffer = io.BytesIO()
            torch.save(self._get_checkpoint_dict(), buffer)
            try:
                # temp file in the same folder (hidden, not matching checkpoint_*), fsync, rename
                atomic_write_bytes(path, buffer.getbuffer())
            except OSError as exc:
                previous = self.get_checkpoints(folder)
                kept = previous[-1] if previous else "none"
                raise CheckpointWriteError(
                    exc.errno, f"checkpoint: cannot write {path}: {exc.strerror or exc}; previous checkpoint kept: {kept}"
                ) from exc
            self.last_saved = path
            while len(found := self.get_checkpoints(folder, f"{name_prefix}_*")) > keep_checkpoints:
                if found[0] == path:  # never rotate away the file just written
                    break
                os.remove(found[0])
            return True

        def _get_checkpoint_dict(self) -> dict[str, Any]:
            checkpoint = super()._get_checkpoint_dict()
            checkpoint[EXTRA_KEY] = {**self.extra_state, "rng": _rng_state()}
            return checkpoint

        def _load_state(self, checkpoint_dict: dict[str, Any], load_progress: bool = True) -> None:
            extra = checkpoint_dict.get(EXTRA_KEY)
            if extra is not None and extra.get("preset") != self.extra_state.get("preset"):
                raise ValueError(
                    f"checkpoint: preset {extra.get('preset')!r} does not match the configured "
                    f"{self.extra_state.get('preset')!r}"
                )
            super()._load_state(checkpoint_dict, load_progress)
            if extra is not None:
                self.loaded_extra = extra
                if "rng" in extra:
                    _set_rng_state(extra["rng"])

    return MaestroLearner


class LearnerDriver:
    """Owns one SF2 ``Learner``: init/resume, train on our batches, atomic checkpoints."""

    def __init__(self, settings: TrainingSettings, train_dir: str | os.PathLike, experiment: str = "policy") -> None:
        from sample_factory.algo.utils.model_sharing import ParameterServer
        from sample_factory.cfg.arguments import preprocess_cfg

        quiet_sf2_logs()  # before the model registration, which SF2 logs at INFO
        register_policy_model()
        self.settings = settings
        self.cfg = build_sf2_config(settings, train_dir, experiment)
        self.env_info = build_env_info()
        if not preprocess_cfg(self.cfg, self.env_info):
            raise ValueError("training settings: sample-factory rejected the configuration (see its log)")
        self.policy_versions = torch.zeros(1, dtype=torch.int32)
        self.param_server = ParameterServer(POLICY_ID, self.policy_versions, serial_mode=False)
        if self.cfg.device == "gpu" and "CUDA_VISIBLE_DEVICES" not in os.environ:
            # SF2 picks the learner's GPU from this variable (its runner sets it); found on an H200
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(torch.cuda.device_count()))
        learner_cls = _make_learner_class()
        self.learner = learner_cls(self.cfg, self.env_info, self.policy_versions, POLICY_ID, self.param_server)
        self.preset = self.cfg.policy_preset
        self.learner.extra_state = {"preset": self.preset, "config_hash": settings.config_hash(), "counters": {}}
        self.learner.init()
        self.device = self.learner.device
        self.actor_critic = self.learner.actor_critic
        self._write_config_json()

    # --- state -----------------------------------------------------------------------------
    @property
    def policy_version(self) -> int:
        return int(self.learner.train_step)

    @property
    def samples_trained(self) -> int:
        return int(self.learner.env_steps)

    @property
    def resumed_counters(self) -> dict[str, int]:
        """Our counters saved with the checkpoint we resumed from (empty on a fresh start)."""
        extra = self.learner.loaded_extra or {}
        return dict(extra.get("counters", {}))

    @property
    def lock(self):  # noqa: ANN201 - a multiprocessing lock
        """Held while weights change; hold it while acting with ``actor_critic``."""
        return self.param_server.policy_lock

    # --- training --------------------------------------------------------------------------
    def train(self, batch: Any) -> dict[str, float] | None:
        """One SF2 ``train()`` call on a TensorDict batch; returns scalar stats when SF2 reports them."""
        # V-trace in SF2 2.1.1 reads mb.advantages when writing summaries (GAE-only field):
        # give it zeros (the summary's adv_* figures are then meaningless).
        batch["advantages"] = torch.zeros_like(batch["rewards"])
        stats = self.learner.train(batch)
        if stats is None:
            return None
        train_stats = stats.get("train")
        if not train_stats:
            return {}
        return {k: float(v) for k, v in train_stats.items()}

    # --- checkpoints -----------------------------------------------------------------------
    def save(self, counters: dict[str, int]) -> str:
        """Write a checkpoint atomically (temp file, fsync, rename) plus a manifest.

        CheckpointWriteError (an OSError naming the file) when it cannot be written, e.g. a full
        disk: nothing half-written is left and the previous checkpoint stays the latest.
        """
        self.learner.extra_state["counters"] = dict(counters)
        if not self.learner.save():
            raise RuntimeError("checkpoint: the learner is not initialized")
        path = self.learner.last_saved
        assert path is not None
        manifest = {
            "checkpoint": os.path.basename(path),
            "policy_version": self.policy_version,
            "samples_trained": self.samples_trained,
            "preset": self.preset,
            "config_hash": self.settings.config_hash(),
            "counters": dict(counters),
        }
        atomic_write_text(Path(path).parent / MANIFEST_NAME, json.dumps(manifest, indent=2))
        return path

    def checkpoint_dir(self) -> Path:
        return Path(self.learner.checkpoint_dir(self.cfg, POLICY_ID))

    def latest_checkpoint(self) -> str | None:
        found = checkpoint_files(self.checkpoint_dir())
        return found[-1] if found else None

    @property
    def unreadable_checkpoints(self) -> list[str]:
        """Newer checkpoint files that failed to load at start (set aside as ``*.corrupt``)."""
        return list(self.learner.unreadable)

    def _write_config_json(self) -> None:
        # SF2's own tools (enjoy, summaries) look for config.json in the experiment folder
        from sample_factory.utils.utils import cfg_file

        atomic_write_text(Path(cfg_file(self.cfg)), json.dumps(vars(self.cfg), indent=2, default=str))


def load_policy_for_inference(checkpoint: str | os.PathLike, device: str = "auto") -> tuple[Any, dict[str, Any]]:
    """Build the actor-critic from a checkpoint file alone (serve mode); returns (model, info)."""
    from sample_factory.model.actor_critic import create_actor_critic

    quiet_sf2_logs()  # before the model registration, which SF2 logs at INFO
    register_policy_model()
    target = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    try:
        data = torch.load(checkpoint, map_location=target, weights_only=True)
    except Exception as exc:
        raise ValueError(f"checkpoint: cannot load {checkpoint}: {exc}") from exc
    if not isinstance(data, dict) or "model" not in data:
        raise ValueError(f"checkpoint: {checkpoint} is not a policy checkpoint (no 'model' entry)")
    extra = data.get(EXTRA_KEY) or {}
    preset = extra.get("preset")
    if preset is None:
        raise ValueError(f"checkpoint: {checkpoint} has no preset recorded")
    settings = TrainingSettings(preset=preset, device="cuda" if target.startswith("cuda") else "cpu")
    cfg = build_sf2_config(settings, tempfile.gettempdir(), "serve")
    model = create_actor_critic(cfg, policy_observation_space(), policy_action_space())
    model.load_state_dict(data["model"])
    model.model_to_device(torch.device(target))
    model.eval()
    info = {"preset": preset, "policy_version": int(data.get("train_step", 0)), "config_hash": extra.get("config_hash", "")}
    return model, info


def rnn_size_of(model: Any) -> int:
    return int(model.core.core.hidden_size)


def zeros_rnn(n: int, size: int, device: torch.device | str) -> Tensor:
    return torch.zeros(n, size, device=device)
