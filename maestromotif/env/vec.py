"""Vectorized NetHack: N games stepped together, compact batched observations out.

``VecEnv`` steps its games in this process; ``ProcessVecEnv`` spreads them over
worker processes that write into shared-memory numpy arrays. Both return the
same arrays (the fields of ``compact.FIELDS`` plus rewards, dones, time_outs)
and reset finished games automatically: a row with ``dones[i] == 1`` already
holds the first observation of the next episode.

Optional per-env skill controllers (``maestromotif.skills``) are called with the
env's ``GameView`` after every step (``reset`` at episode start, ``step``
otherwise); the skill they return goes into ``skills`` and the stats one-hot,
their ``depth_change`` into ``stat_changes[:, 0]``. Without controllers every
row runs skill 0 with zero stat changes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from dataclasses import dataclass
from multiprocessing import shared_memory
from multiprocessing.connection import Connection
from typing import Any, Callable, Protocol, Sequence

import numpy as np
from nle import nethack

from maestromotif.env import compact
from maestromotif.env.actions import NUM_ACTIONS
from maestromotif.env.nethack_env import _DROP_EXCLUDED, NetHackMonk, allocate_raw
from maestromotif.env.view import GameView
from maestromotif.skills.competence import NUM_SIGNALS, CompetenceSignals

NUM_SKILLS = compact.NUM_SKILLS


class Controller(Protocol):
    """What the vectorized env needs from a skill controller."""

    def reset(self, view: GameView) -> int: ...

    def step(self, view: GameView) -> int: ...

    @property
    def depth_change(self) -> float: ...


ControllerFactory = Callable[[int], Controller]  # env index -> controller


@dataclass(frozen=True, slots=True)
class EpisodeStats:
    """One finished episode (the fields of the proto's EpisodeSummary and a few more)."""

    env_index: int
    seed: int  # the env's seed
    episode: int  # episode index within that env
    steps: int
    env_return: float
    skill_steps: tuple[int, ...]  # steps under each skill, in skill-id order
    max_depth: int
    terminated: bool  # death
    truncated: bool  # step limit (or a policy failure)
    policy_failure: str | None = None  # the policy over skills failed and the episode was ended there


# outputs besides the compact observation: name -> (per-env shape, dtype)
STEP_FIELDS: dict[str, tuple[tuple[int, ...], np.dtype]] = {
    "rewards": ((), np.dtype(np.float32)),
    "dones": ((), np.dtype(np.uint8)),
    "time_outs": ((), np.dtype(np.uint8)),
    # per-step competence signals of each observation (maestromotif.skills.competence)
    "competence": ((NUM_SIGNALS,), np.dtype(np.float32)),
}


def _check_actions(actions: Any, n: int) -> list[int]:
    """Validate a batch of action ids; ValueError names the env and the id."""
    a = np.asarray(actions)
    if a.shape != (n,):
        raise ValueError(f"actions: shape {a.shape}, expected ({n},)")
    if a.dtype.kind not in "iu":
        raise ValueError(f"actions: dtype {a.dtype}, expected integers")
    acts: list[int] = a.tolist()
    if min(acts) < 0 or max(acts) >= NUM_ACTIONS:  # plain Python: cheaper than numpy on a few ids
        i = next(i for i, x in enumerate(acts) if not 0 <= x < NUM_ACTIONS)
        raise ValueError(f"invalid action id {acts[i]} for env {i}: expected an integer in [0, {NUM_ACTIONS})")
    return acts


def _check_skill(skill: Any, env_index: int) -> int:
    if isinstance(skill, bool) or not isinstance(skill, (int, np.integer)) or not 0 <= skill < NUM_SKILLS:
        raise ValueError(f"controller of env {env_index} returned skill {skill!r}: expected a skill id in [0, {NUM_SKILLS})")
    return int(skill)


class EnvGroup:
    """Games stepped in this process, writing into given output arrays.

    ``out`` holds the compact fields and ``STEP_FIELDS`` for exactly these
    games (possibly views into shared memory); ``index_offset`` is the index
    of the first game in the whole batch, for episode statistics.
    """

    def __init__(
        self,
        seeds: Sequence[int],
        *,
        out: dict[str, np.ndarray] | None = None,
        controllers: Sequence[Controller] | None = None,
        index_offset: int = 0,
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        n = len(seeds)
        if n < 1:
            raise ValueError("seeds: need at least one env")
        if controllers is not None and len(controllers) != n:
            raise ValueError(f"controllers: {len(controllers)} given for {n} envs")
        self.n = n
        self.index_offset = index_offset
        self.raw = allocate_raw(n)
        self.envs = [
            NetHackMonk(int(s), buffers={k: v[i] for k, v in self.raw.items()}, **(env_kwargs or {}))
            for i, s in enumerate(seeds)
        ]
        if out is None:
            out = compact.allocate(n)
            out.update({k: np.zeros((n, *shape), dtype=dt) for k, (shape, dt) in STEP_FIELDS.items()})
        self.out = out
        self.controllers = list(controllers) if controllers is not None else None
        self.skills = np.zeros(n, dtype=np.int64)
        self.depth_change = np.zeros(n, dtype=np.float32)
        self.message_counts = np.zeros(n, dtype=np.float32)
        self.spells = np.zeros(n, dtype=np.float32)
        self.ep_steps = np.zeros(n, dtype=np.int64)
        self.ep_return = np.zeros(n, dtype=np.float64)
        self.ep_skill_steps = np.zeros((n, NUM_SKILLS), dtype=np.int64)
        self.ep_max_depth = np.zeros(n, dtype=np.int64)
        self._rows = np.arange(n)
        self._cropper = compact.Cropper(n)
        self._extras = np.zeros((n, 3), dtype=np.float32)
        self.signals = CompetenceSignals(n)
        # starting-inventory letters of every game; each env writes its own row at reset
        self.start_letters = np.zeros((n, 256), dtype=bool)
        for i, env in enumerate(self.envs):
            env.start_letters = self.start_letters[i]

    def reset(self) -> None:
        """Start a fresh episode in every game."""
        for i, env in enumerate(self.envs):
            env.reset_game()
            self._begin(i, env)
        self.out["rewards"][:] = 0
        self.out["dones"][:] = 0
        self.out["time_outs"][:] = 0
        self._compact()

    def _begin(self, i: int, env: NetHackMonk, acquired: int | None = None) -> None:
        """Statistics and controller of game i at the start of an episode."""
        self.ep_steps[i] = 0
        self.ep_return[i] = 0.0
        self.ep_skill_steps[i] = 0
        self.ep_max_depth[i] = 0
        self.signals.episode_started(i)
        self.spells[i] = env.spell
        self.message_counts[i] = env.message_count
        self.depth_change[i] = 0.0
        if self.controllers is not None:
            self.skills[i] = _check_skill(self.controllers[i].reset(env.view(acquired)), self.index_offset + i)
        else:
            self.skills[i] = 0

    def step(self, actions: Any) -> list[EpisodeStats]:
        """Step every game once; returns the episodes that ended.

        Three passes keep per-env Python work to the game itself: step all
        games, then update statistics and find acquired items for all games
        with array operations, then run the controllers.
        """
        acts = _check_actions(actions, self.n)
        out = self.out
        rewards, dones, time_outs = out["rewards"], out["dones"], out["time_outs"]
        envs = self.envs
        ended: list[int] = []
        truncs: list[bool] = []
        for i, env in enumerate(envs):
            r, terminated, truncated = env.act(acts[i])
            rewards[i] = r
            if terminated or truncated:
                ended.append(i)
                truncs.append(truncated)
        self.ep_steps += 1
        self.ep_return += rewards
        self.ep_skill_steps[self._rows, self.skills] += 1
        dones[:] = 0
        time_outs[:] = 0
        finished: list[EpisodeStats] = []
        for i, truncated in zip(ended, truncs):
            env = envs[i]
            dones[i] = 1
            time_outs[i] = truncated
            finished.append(
                EpisodeStats(
                    env_index=self.index_offset + i,
                    seed=env.seed_value,
                    episode=env.episode,
                    steps=int(self.ep_steps[i]),
                    env_return=float(self.ep_return[i]),
                    skill_steps=tuple(self.ep_skill_steps[i].tolist()),
                    max_depth=int(self.ep_max_depth[i]),
                    terminated=not truncated,
                    truncated=truncated,
                )
            )
            env.reset_game()
        ctrls = self.controllers
        acquired = self._acquired() if ctrls is not None else [None] * self.n
        for i in ended:
            self._begin(i, envs[i], acquired[i])
        counts = self.message_counts
        if ctrls is None:
            for i, env in enumerate(envs):
                counts[i] = env.message_count
        else:
            skills, dchange = self.skills, self.depth_change
            done_mask = dones.tolist()
            failed: list[tuple[int, str]] = []
            for i, env in enumerate(envs):
                if done_mask[i]:
                    continue
                counts[i] = env.message_count
                c = ctrls[i]
                skills[i] = _check_skill(c.step(env.view(acquired[i])), self.index_offset + i)
                dchange[i] = c.depth_change
                why = getattr(c, "episode_failed", None)
                if why:
                    failed.append((i, str(why)))
            for i, why in failed:
                finished.append(self._end_failed(i, why))
        self._compact()
        return finished

    def _end_failed(self, i: int, why: str) -> EpisodeStats:
        """End game i's episode because its policy over skills failed (a recorded failure)."""
        env = self.envs[i]
        self.out["dones"][i] = 1
        self.out["time_outs"][i] = 1
        stats = EpisodeStats(
            env_index=self.index_offset + i,
            seed=env.seed_value,
            episode=env.episode,
            steps=int(self.ep_steps[i]),
            env_return=float(self.ep_return[i]),
            skill_steps=tuple(self.ep_skill_steps[i].tolist()),
            max_depth=int(self.ep_max_depth[i]),
            terminated=False,
            truncated=True,
            policy_failure=why[:400],
        )
        env.reset_game()
        self._begin(i, env)
        return stats

    def _acquired(self) -> list[int]:
        """Acquired droppable items of every game at once (the controllers' item counts)."""
        letters = self.raw["inv_letters"]
        return (
            (letters != 0) & ~_DROP_EXCLUDED[self.raw["inv_oclasses"]] & ~self.start_letters[self._rows[:, None], letters]
        ).sum(axis=1).tolist()

    def _compact(self) -> None:
        """Fill the compact fields for all games at once from the raw buffers."""
        raw, out = self.raw, self.out
        bl = raw["blstats"]
        np.maximum(self.ep_max_depth, bl[:, nethack.NLE_BL_DEPTH], out=self.ep_max_depth)
        row = bl[:, nethack.NLE_BL_Y] + 1
        col = bl[:, nethack.NLE_BL_X]
        self._cropper(raw["tty_chars"], row, col, out["tty_chars"])
        self._cropper(raw["tty_colors"], row, col, out["tty_colors"])
        msgs = out["messages"]
        msgs[...] = raw["message"]
        msgs[np.logical_or.accumulate(msgs == 0, axis=1)] = 0  # NUL-terminated: clear what follows
        oc = raw["inv_oclasses"]
        extras = self._extras
        extras[:, 0] = self.spells
        np.sum(oc == nethack.POTION_CLASS, axis=1, out=extras[:, 1])
        np.sum(oc == nethack.FOOD_CLASS, axis=1, out=extras[:, 2])
        compact.fill_stats(bl, extras, self.skills, out["stats"])
        out["skills"][:] = self.skills
        out["message_counts"][:] = self.message_counts
        sc = out["stat_changes"]
        sc[:] = 0.0
        sc[:, 0] = self.depth_change
        self.signals.fill(raw, out["competence"])

    def close(self) -> None:
        for env in self.envs:
            env.close()


class VecEnv:
    """N games in this process. ``reset()`` then ``step(actions)``; results in ``self.obs``.

    ``step`` returns ``(obs, rewards, dones, time_outs, finished)``: the compact
    batch (a dict of arrays, overwritten by the next step: copy what you keep),
    float32 rewards, uint8 dones and time-outs, and the finished episodes.
    """

    def __init__(
        self,
        seeds: Sequence[int],
        *,
        controllers: Sequence[Controller] | None = None,
        controller_factory: ControllerFactory | None = None,
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if controllers is not None and controller_factory is not None:
            raise ValueError("give controllers or controller_factory, not both")
        if controller_factory is not None:
            controllers = [controller_factory(i) for i in range(len(seeds))]
        self.group = EnvGroup(seeds, controllers=controllers, env_kwargs=env_kwargs)
        self.num_envs = self.group.n
        self.out = self.group.out
        self.obs = {k: self.out[k] for k in compact.FIELDS}

    @property
    def envs(self) -> list[NetHackMonk]:
        return self.group.envs

    def reset(self) -> dict[str, np.ndarray]:
        self.group.reset()
        return self.obs

    def step(self, actions: Any) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, list[EpisodeStats]]:
        finished = self.group.step(actions)
        return self.obs, self.out["rewards"], self.out["dones"], self.out["time_outs"], finished

    @property
    def competence(self) -> np.ndarray:
        """float32 [n, 4]: competence signals of the current observations (overwritten by step)."""
        return self.out["competence"]

    def close(self) -> None:
        self.group.close()

    def __enter__(self) -> "VecEnv":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------ worker processes
def _shared_fields(n: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    fields = {k: ((n, *shape), dt) for k, (shape, dt) in compact.FIELDS.items()}
    fields.update({k: ((n, *shape), dt) for k, (shape, dt) in STEP_FIELDS.items()})
    fields["actions"] = ((n,), np.dtype(np.int64))
    return fields


def _attach(names: dict[str, str], n: int) -> tuple[list[shared_memory.SharedMemory], dict[str, np.ndarray]]:
    blocks, arrays = [], {}
    for key, (shape, dt) in _shared_fields(n).items():
        shm = shared_memory.SharedMemory(name=names[key])
        blocks.append(shm)
        arrays[key] = np.ndarray(shape, dtype=dt, buffer=shm.buf)
    return blocks, arrays


def _worker(
    conn: Connection,
    names: dict[str, str],
    n_total: int,
    lo: int,
    hi: int,
    seeds: list[int],
    controller_factory: ControllerFactory | None,
    env_kwargs: dict[str, Any] | None,
) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if "torch" in sys.modules:  # a controller's policy may use torch: one thread per worker
        sys.modules["torch"].set_num_threads(1)
    blocks, arrays = _attach(names, n_total)
    group: EnvGroup | None = None
    try:
        out = {k: v[lo:hi] for k, v in arrays.items() if k != "actions"}
        controllers = [controller_factory(i) for i in range(lo, hi)] if controller_factory is not None else None
        group = EnvGroup(seeds, out=out, controllers=controllers, index_offset=lo, env_kwargs=env_kwargs)
        conn.send(("ready", None))
        while True:
            cmd = conn.recv()
            try:
                if cmd == "step":
                    conn.send(("ok", group.step(arrays["actions"][lo:hi])))
                elif cmd == "reset":
                    group.reset()
                    conn.send(("ok", []))
                elif cmd == "close":
                    break
                else:
                    conn.send(("error", f"unknown command {cmd!r}"))
            except Exception as e:  # report to the parent, keep serving
                conn.send(("error", f"{type(e).__name__}: {e}"))
    except (EOFError, KeyboardInterrupt):
        pass
    except Exception as e:
        try:
            conn.send(("error", f"{type(e).__name__}: {e}"))
        except Exception:
            pass
    finally:
        if group is not None:
            group.close()
        del arrays
        for b in blocks:
            b.close()
        conn.close()


class ProcessVecEnv:
    """N games spread over worker processes; same interface and results as ``VecEnv``.

    Observations live in shared memory; only finished-episode records travel
    through pipes. ``controller_factory`` (env index -> controller) must be
    picklable: the controllers are built inside the workers.
    """

    def __init__(
        self,
        seeds: Sequence[int],
        *,
        num_workers: int,
        controller_factory: ControllerFactory | None = None,
        env_kwargs: dict[str, Any] | None = None,
        start_method: str = "spawn",
    ) -> None:
        n = len(seeds)
        if n < 1:
            raise ValueError("seeds: need at least one env")
        if not 1 <= num_workers <= n:
            raise ValueError(f"num_workers must be in [1, {n}], got {num_workers}")
        self.num_envs = n
        self._blocks: list[shared_memory.SharedMemory] = []
        self.arrays: dict[str, np.ndarray] = {}
        names: dict[str, str] = {}
        for key, (shape, dt) in _shared_fields(n).items():
            size = max(1, int(np.prod(shape, dtype=np.int64)) * dt.itemsize)
            shm = shared_memory.SharedMemory(create=True, size=size)
            self._blocks.append(shm)
            names[key] = shm.name
            self.arrays[key] = np.ndarray(shape, dtype=dt, buffer=shm.buf)
            self.arrays[key][...] = 0
        self.obs = {k: self.arrays[k] for k in compact.FIELDS}
        bounds = np.linspace(0, n, num_workers + 1).astype(int)
        ctx = mp.get_context(start_method)
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        self._closed = False
        try:
            for w in range(num_workers):
                lo, hi = int(bounds[w]), int(bounds[w + 1])
                parent, child = ctx.Pipe()
                p = ctx.Process(
                    target=_worker,
                    args=(child, names, n, lo, hi, [int(s) for s in seeds[lo:hi]], controller_factory, env_kwargs),
                    daemon=True,
                )
                p.start()
                child.close()
                self._conns.append(parent)
                self._procs.append(p)
            self._gather()
        except Exception:
            self.close()
            raise

    def _gather(self) -> list[EpisodeStats]:
        finished: list[EpisodeStats] = []
        errors: list[str] = []
        for w, c in enumerate(self._conns):
            try:
                kind, payload = c.recv()
            except EOFError:
                errors.append(f"worker {w} died")
                continue
            if kind == "error":
                errors.append(f"worker {w}: {payload}")
            elif payload:
                finished.extend(payload)
        if errors:
            exc = ValueError if any(": ValueError:" in e for e in errors) else RuntimeError
            raise exc("; ".join(errors))
        return finished

    def reset(self) -> dict[str, np.ndarray]:
        for c in self._conns:
            c.send("reset")
        self._gather()
        return self.obs

    def step(self, actions: Any) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, list[EpisodeStats]]:
        acts = _check_actions(actions, self.num_envs)  # fail here, before any worker steps
        self.arrays["actions"][:] = acts
        for c in self._conns:
            c.send("step")
        finished = self._gather()
        return self.obs, self.arrays["rewards"], self.arrays["dones"], self.arrays["time_outs"], finished

    @property
    def competence(self) -> np.ndarray:
        """float32 [n, 4]: competence signals of the current observations (overwritten by step)."""
        return self.arrays["competence"]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for c in self._conns:
            try:
                c.send("close")
            except Exception:
                pass
        for p in self._procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        for c in self._conns:
            c.close()
        self.obs = {}
        self.arrays = {}
        for b in self._blocks:
            try:
                b.close()
            except BufferError:  # a caller still holds an array view; the OS frees it later
                pass
            b.unlink()
        self._blocks = []

    def __enter__(self) -> "ProcessVecEnv":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
