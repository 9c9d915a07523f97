"""Vectorized envs: in-process vs worker processes, auto-reset, stats, controllers, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from maestromotif.env import compact
from maestromotif.env.actions import NUM_ACTIONS, Action
from maestromotif.env.vec import EpisodeStats, ProcessVecEnv, VecEnv
from maestromotif.env.view import GameView


def _run(venv: VecEnv | ProcessVecEnv, actions: np.ndarray) -> tuple[list[dict[str, np.ndarray]], list[EpisodeStats]]:
    obs = venv.reset()
    trace = [{k: v.copy() for k, v in obs.items()}]
    finished: list[EpisodeStats] = []
    for a in actions:
        obs, rew, done, tout, fin = venv.step(a)
        trace.append({k: v.copy() for k, v in obs.items()} | {"rewards": rew.copy(), "dones": done.copy(), "time_outs": tout.copy(),
                                                             "competence": venv.competence.copy()})
        finished += fin
    return trace, finished


def test_worker_processes_equal_in_process() -> None:
    seeds = [3, 4, 5]
    actions = np.random.default_rng(1).integers(NUM_ACTIONS, size=(150, 3))
    kw = {"max_episode_steps": 40}
    with VecEnv(seeds, env_kwargs=kw) as v:
        a, fa = _run(v, actions)
    with ProcessVecEnv(seeds, num_workers=2, env_kwargs=kw) as p:
        b, fb = _run(p, actions)
    assert fa == fb and len(fa) >= 3
    for x, y in zip(a, b):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_auto_reset_and_episode_stats() -> None:
    with VecEnv([1, 2], env_kwargs={"max_episode_steps": 5}) as v:
        v.reset()
        for t in range(5):
            obs, rew, done, tout, fin = v.step(np.full(2, Action.SEARCH))
        assert done.tolist() == [1, 1] and tout.tolist() == [1, 1]
        assert [f.env_index for f in fin] == [0, 1]
        assert all(f.steps == 5 and f.truncated and not f.terminated and f.episode == 0 for f in fin)
        assert fin[0].skill_steps == (5, 0, 0, 0, 0) and fin[0].max_depth == 1
        # the rows already hold the next episode's first observation
        assert (obs["tty_chars"][:, 6, 6] == ord("@")).all()
        assert v.envs[0].episode == 1 and v.envs[0].episode_step == 0
        compact.validate(obs, 2)
        obs, rew, done, tout, fin = v.step(np.full(2, Action.SEARCH))
        assert done.tolist() == [0, 0] and fin == []


class _ScriptedController:
    """A fake controller for this unit test of the env's calls to it."""

    def __init__(self, skills: list[object]) -> None:
        self.skills = skills
        self.calls: list[tuple[str, int, int]] = []

    def reset(self, view: GameView) -> int:
        self.calls.append(("reset", view.episode_step, view.last_action))
        return 0

    def step(self, view: GameView) -> object:
        assert view.tty_chars.shape == (24, 80) and view.blstats.shape == (27,)
        assert chr(view.tty_chars[view.hero_row, view.hero_col]) == "@"
        self.calls.append(("step", view.episode_step, view.last_action))
        return self.skills[(view.episode_step - 1) % len(self.skills)]

    @property
    def depth_change(self) -> float:
        return -1.0 if self.calls[-1][0] == "step" else 0.0


def test_controllers_set_skill_onehot_and_depth_change() -> None:
    ctrls = [_ScriptedController([1, 4]), _ScriptedController([3])]
    with VecEnv([1, 2], controllers=ctrls) as v:
        obs = v.reset()
        assert obs["skills"].tolist() == [0, 0]
        obs, *_ = v.step(np.array([Action.SEARCH, Action.SEARCH]))
        assert obs["skills"].tolist() == [1, 3]
        assert obs["stats"][0, 30:].tolist() == [0, 1, 0, 0, 0]
        assert obs["stats"][1, 30:].tolist() == [0, 0, 0, 1, 0]
        assert obs["stat_changes"][:, 0].tolist() == [-1.0, -1.0]
        assert (obs["stat_changes"][:, 1:] == 0).all()
        obs, *_, fin = v.step(np.array([Action.SEARCH, Action.SEARCH]))
        assert obs["skills"].tolist() == [4, 3]
        assert ctrls[0].calls == [("reset", 0, -1), ("step", 1, Action.SEARCH), ("step", 2, Action.SEARCH)]


def test_controller_returning_bad_skill_is_a_clear_error() -> None:
    for bad in (5, -1, "merchant", None):
        with VecEnv([1], controllers=[_ScriptedController([bad])]) as v:
            v.reset()
            with pytest.raises(ValueError, match="controller of env 0 returned skill"):
                v.step(np.array([Action.SEARCH]))


def _factory(i: int) -> _ScriptedController:
    return _ScriptedController([i + 1])


def test_worker_controllers_from_factory() -> None:
    with ProcessVecEnv([1, 2], num_workers=2, controller_factory=_factory) as p:
        p.reset()
        obs, *_ = p.step(np.array([Action.SEARCH, Action.SEARCH]))
        assert obs["skills"].tolist() == [1, 2]


def test_invalid_actions_name_env_and_id() -> None:
    with VecEnv([1, 2]) as v:
        v.reset()
        with pytest.raises(ValueError, match="invalid action id 28 for env 1"):
            v.step(np.array([0, 28]))
        with pytest.raises(ValueError, match="actions: shape"):
            v.step(np.array([0]))
        with pytest.raises(ValueError, match="actions: dtype"):
            v.step(np.array([0.5, 1.0]))
        v.step(np.array([Action.SEARCH, Action.SEARCH]))  # still usable
    with ProcessVecEnv([1, 2], num_workers=1) as p:
        p.reset()
        with pytest.raises(ValueError, match="invalid action id -1 for env 0"):
            p.step(np.array([-1, 0]))
        p.step(np.array([Action.SEARCH, Action.SEARCH]))


def test_bad_construction_arguments() -> None:
    with pytest.raises(ValueError, match="num_workers"):
        ProcessVecEnv([1, 2], num_workers=3)
    with pytest.raises(ValueError, match="seeds"):
        VecEnv([])
    with pytest.raises(ValueError, match="controllers"):
        VecEnv([1, 2], controllers=[_ScriptedController([0])])


def _bad_factory(i: int) -> _ScriptedController:
    return _ScriptedController([7])


def test_worker_errors_reach_the_caller() -> None:
    with ProcessVecEnv([1, 2], num_workers=2, controller_factory=_bad_factory) as p:
        p.reset()
        with pytest.raises(ValueError, match="returned skill 7"):
            p.step(np.array([Action.SEARCH, Action.SEARCH]))
