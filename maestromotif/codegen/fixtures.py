"""Recorded NLE states for the validation harness: the shipped fixture, its loader and its recorder.

``python -m maestromotif.codegen.fixtures`` plays real NetHack games (NLE, wizard mode) with the
project's env and skill controller under reference policies over skills, and records what the
controller hands to generated code:

- every ``SkillState`` passed to ``choose_skill`` (``selections``);
- at sampled steps (every step where a conditional skill may start, every step where a skill
  ended, and a random few percent of the others) the ``CropView`` and acquired-item count passed to
  ``skill_precondition``, the hand-written rule's verdict on that real game state (``rule_pre``,
  computed from the glyphs), and the arguments of ``skill_termination`` (``termination``).

No trained skill network is involved: the discoverer, worshipper and merchant act uniformly at
random; the descender and ascender are played by wizard-mode moves onto a real staircase
(``^F`` to map the level, ``^T`` onto the stairs) followed by the real ``>``/``<`` action, so
that the states reach several depths and the Gnomish Mines. In some episodes the recorder wishes
for an item and an altar, or creates a shopkeeper, next to the hero so that both conditional
skills become available in real game states. The result is small JSON shipped inside the package
(``nle_states.json``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from maestromotif.fileio import atomic_write_text

FIXTURE_PATH = Path(__file__).with_name("nle_states.json")
FORMAT = 1
CROP_SIDE = 7
MAX_FIXTURE_BYTES = 2 * 1024 * 1024

# (policy, seed, max agent steps, gifts): gifts = "altar" / "shopkeeper" / "" (see the module docstring)
DEFAULT_PLAN: tuple[tuple[str, int, int, str], ...] = (
    ("gnomish", 11, 1500, ""),
    ("delphi", 12, 1500, ""),
    ("minetown", 13, 1500, "shopkeeper"),
    ("exploration", 14, 1500, "altar"),
    ("buc", 15, 1200, "altar"),
    ("levelupsell", 16, 1200, "shopkeeper"),
    ("discoveryhunger", 17, 1500, ""),
    ("gnomish", 18, 1500, ""),
    ("goldenexit", 19, 1500, ""),
    ("transactions", 20, 1200, "shopkeeper"),
    ("price", 21, 1500, ""),
    ("exploration", 22, 1500, ""),
)
# The discoverer's D while recording (the policies' own D is 50 or 500 turns): more selections per
# game, so more variety per second of NetHack. The termination inputs record the D used.
RECORD_BASE_TURNS = 40
MAX_SELECTIONS_PER_EPISODE = 30
MAX_SKILL_STEPS_PER_EPISODE = 20
SAMPLE_RATE = 0.03
GIFT_STEP = 400  # after the episode's ordinary variety
MAX_SAME_IN_A_ROW = 3


class FixtureError(ValueError):
    """The fixture file is missing, malformed or does not match the state contract."""


@dataclass(frozen=True, slots=True)
class FixtureEpisode:
    """What was recorded in one real game."""

    policy: str
    seed: int
    base_turns: int
    steps: int  # agent steps played
    selections: list[dict[str, Any]]  # SkillState fields (visited_main_depths as a sorted list)
    skill_steps: list[dict[str, Any]]  # {"crop", "num_items", "rule_pre", "termination"}


@dataclass(frozen=True, slots=True)
class StateFixture:
    episodes: tuple[FixtureEpisode, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_states(self) -> int:
        return sum(len(e.selections) for e in self.episodes)

    @property
    def num_skill_steps(self) -> int:
        return sum(len(e.skill_steps) for e in self.episodes)


# ------------------------------------------------------------------------------------------------
# loading (the file is data: check every field before use)
# ------------------------------------------------------------------------------------------------


def _check_state(d: Any, where: str) -> dict[str, Any]:
    from maestromotif.skills.contract import STATE_FIELDS

    if not isinstance(d, dict) or set(d) != set(STATE_FIELDS):
        raise FixtureError(f"{where}: a state must have exactly the fields {', '.join(STATE_FIELDS)}")
    for name, value in d.items():
        if name == "visited_main_depths":
            ok = isinstance(value, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in value)
        elif name == "branch_depth":
            ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
        elif name in ("ate_in_mines", "worshipper_available", "merchant_available"):
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok:
            raise FixtureError(f"{where}: field {name!r} has a value of the wrong type: {value!r:.60}")
    if not 0 <= d["skill"] <= 4:
        raise FixtureError(f"{where}: skill {d['skill']} out of range")
    return d


def _check_step(d: Any, where: str) -> dict[str, Any]:
    if not isinstance(d, dict) or set(d) != {"crop", "num_items", "rule_pre", "termination"}:
        raise FixtureError(f"{where}: a step record needs crop, num_items, rule_pre, termination")
    crop = d["crop"]
    if not isinstance(crop, dict) or set(crop) != {"chars", "colors", "monsters", "features"}:
        raise FixtureError(f"{where}: crop needs chars, colors, monsters, features")
    if not (isinstance(crop["chars"], list) and len(crop["chars"]) == CROP_SIDE
            and all(isinstance(r, str) and len(r) == CROP_SIDE for r in crop["chars"])):
        raise FixtureError(f"{where}: crop.chars must be {CROP_SIDE} strings of {CROP_SIDE} characters")
    for key, cell in (("colors", int), ("monsters", str), ("features", str)):
        grid = crop[key]
        if not (isinstance(grid, list) and len(grid) == CROP_SIDE and all(
                isinstance(r, list) and len(r) == CROP_SIDE and all(isinstance(c, cell) for c in r) for r in grid)):
            raise FixtureError(f"{where}: crop.{key} must be {CROP_SIDE}x{CROP_SIDE} {cell.__name__} values")
    if isinstance(d["num_items"], bool) or not isinstance(d["num_items"], int) or d["num_items"] < 0:
        raise FixtureError(f"{where}: num_items must be an int >= 0")
    pre = d["rule_pre"]
    if not (isinstance(pre, list) and len(pre) == 2 and all(isinstance(x, bool) for x in pre)):
        raise FixtureError(f"{where}: rule_pre must be [bool, bool]")
    t = d["termination"]
    types = (int, int, int, int, bool, bool, int)
    if not (isinstance(t, list) and len(t) == len(types) and all(
            isinstance(v, ty) and (ty is bool or not isinstance(v, bool)) for v, ty in zip(t, types))):
        raise FixtureError(f"{where}: termination must be [skill, skill_turns, depth, start_depth, "
                           "worshipper_pre, merchant_pre, base_turns]")
    return d


def _unpack(step: Any, names: list[str], where: str) -> Any:
    """Monster/feature name indices back to names (see ``record_fixture``)."""
    if not isinstance(step, dict) or not isinstance(step.get("crop"), dict):
        return step  # _check_step reports it
    crop = dict(step["crop"])
    for key in ("monsters", "features"):
        grid = crop.get(key)
        if not isinstance(grid, list) or not all(isinstance(row, list) for row in grid):
            return step
        try:
            crop[key] = [[names[i] if isinstance(i, int) and not isinstance(i, bool) and i >= 0 else None
                          for i in row] for row in grid]
        except IndexError:
            raise FixtureError(f"{where}: crop.{key} refers to a name index past the table") from None
    return {**step, "crop": crop}


def load_fixture(path: str | Path | None = None) -> StateFixture:
    """Load and check the recorded states (the shipped file by default); ``FixtureError`` names the problem."""
    path = Path(path) if path is not None else FIXTURE_PATH
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FixtureError(f"cannot read the state fixture {path}: {exc}") from None
    if len(raw) > MAX_FIXTURE_BYTES:
        raise FixtureError(f"{path}: {len(raw)} bytes, more than {MAX_FIXTURE_BYTES}")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise FixtureError(f"{path}: not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("episodes"), list):
        raise FixtureError(f"{path}: expected an object with format {FORMAT} and a list of episodes")
    names = data.get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise FixtureError(f"{path}: 'names' must be a list of strings")
    episodes = []
    for e, ep in enumerate(data["episodes"]):
        where = f"{path} episode {e}"
        if not isinstance(ep, dict) or not {"policy", "seed", "base_turns", "steps", "selections", "skill_steps"} <= set(ep):
            raise FixtureError(f"{where}: missing fields")
        if not isinstance(ep["selections"], list) or not isinstance(ep["skill_steps"], list):
            raise FixtureError(f"{where}: selections and skill_steps must be lists")
        for key in ("seed", "base_turns", "steps"):
            if isinstance(ep[key], bool) or not isinstance(ep[key], int):
                raise FixtureError(f"{where}: {key} must be an int")
        episodes.append(FixtureEpisode(
            policy=str(ep["policy"]),
            seed=ep["seed"],
            base_turns=ep["base_turns"],
            steps=ep["steps"],
            selections=[_check_state(s, f"{where} selection {i}") for i, s in enumerate(ep["selections"])],
            skill_steps=[_check_step(_unpack(s, names, f"{where} step record {i}"), f"{where} step record {i}")
                         for i, s in enumerate(ep["skill_steps"])],
        ))
    meta = data.get("meta", {})
    return StateFixture(tuple(episodes), meta if isinstance(meta, dict) else {})


# ------------------------------------------------------------------------------------------------
# recording (needs NLE)
# ------------------------------------------------------------------------------------------------


def _state_dict(state: Any) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(state)
    d["visited_main_depths"] = sorted(state.visited_main_depths)
    return d


def _type_keys(env: Any, keys: list[int | str], answer_yes: bool = False) -> None:
    """Raw keystrokes for wizard-mode commands (recording only): then settle prompts like a step."""
    for k in keys:
        for code in [k] if isinstance(k, int) else [ord(c) for c in k]:
            env._send(code)  # noqa: SLF001 - wizard-mode set-up of the recorder, not agent play
    if answer_yes and env._misc[0]:  # noqa: SLF001
        env._send(ord("y"))  # noqa: SLF001
    env._settle([], [False])  # noqa: SLF001
    env._finish_message()  # noqa: SLF001


def stairs_move(env: Any, down: bool, rng: random.Random) -> bool:
    """Wizard-map the level, teleport onto a staircase; True when the hero stands on one."""
    import numpy as np
    from nle import nethack

    from maestromotif.skills import rules

    _type_keys(env, [nethack.C("f")])
    target = rules.GLYPH_DOWNSTAIR if down else rules.GLYPH_UPSTAIR
    ys, xs = np.nonzero(env.buf["glyphs"] == target)
    if len(ys) == 0:
        return False
    k = rng.randrange(len(ys))  # on the fork level: either staircase
    y, x = int(ys[k]), int(xs[k])
    bl = env.buf["blstats"]
    dy, dx = y - int(bl[1]), x - int(bl[0])
    keys: list[int | str] = [nethack.C("t")]
    keys += ["j" if dy > 0 else "k"] * abs(dy) + ["l" if dx > 0 else "h"] * abs(dx) + ["."]
    _type_keys(env, keys)
    return (int(env.buf["blstats"][1]), int(env.buf["blstats"][0])) == (y, x)


def record_episode(policy_name: str, seed: int, max_steps: int, gifts: str) -> FixtureEpisode:
    """Play one real game and record what the controller hands to generated code."""
    from nle import nethack

    from maestromotif.env.actions import Action
    from maestromotif.env.nethack_env import NetHackMonk
    from maestromotif.skills import rules
    from maestromotif.skills.contract import SkillState
    from maestromotif.skills.controller import SkillController, crop_view
    from maestromotif.skills.ids import Skill
    from maestromotif.skills.reference import load_reference

    rng = random.Random(seed)
    inner = load_reference(policy_name)

    class Recorder:
        """Wraps the reference policy: records states and termination inputs, same behaviour."""

        name = policy_name
        base_turns = min(inner.base_turns, RECORD_BASE_TURNS)
        has_custom_preconditions = False
        has_custom_termination = True  # to see the inputs; answers exactly like the default rule

        def __init__(self) -> None:
            self.states: list[SkillState] = []
            self.last_termination: tuple[Any, ...] = ()
            self.last_ended = False

        def start(self, r: random.Random) -> None:
            inner.start(r)

        def choose(self, state: SkillState) -> object:
            self.states.append(state)
            return inner.choose(state)

        def termination(self, *args: Any) -> bool:
            self.last_termination = args
            self.last_ended = rules.termination(*args)
            return self.last_ended

    recorder = Recorder()
    env = NetHackMonk(seed, wizard=True, max_episode_steps=max_steps + 10)
    env.reset_game()
    controller = SkillController(recorder, seed=seed)
    controller.reset(env.view())
    skill_steps: list[dict[str, Any]] = []
    moved_run = -1
    steps = 0
    for t in range(max_steps):
        skill = controller.skill
        run_id = int(controller.stats.skill_runs.sum())
        if gifts and t == GIFT_STEP:
            _type_keys(env, [nethack.C("w"), "ring of adornment", "\r"])
            _type_keys(env, [nethack.C("w"), "altar", "\r"] if gifts == "altar"
                       else [nethack.C("g"), "shopkeeper", "\r"], answer_yes=True)
        if skill in (Skill.DESCENDER, Skill.ASCENDER) and moved_run != run_id and not env.done:
            moved_run = run_id
            down = skill == Skill.DESCENDER
            if not down and env.view().depth <= 1:
                action = int(Action.SEARCH)  # ascending from depth 1 would leave the dungeon
            else:
                action = int(Action.DOWN if down else Action.UP) if stairs_move(env, down, rng) else int(Action.SEARCH)
        else:
            action = rng.randrange(1, 23)  # moves, runs, up/down, rest, kick, eat, search
        _, terminated, truncated = env.act(action)
        steps += 1
        if terminated or truncated:
            break
        view = env.view()
        recorder.last_ended = False
        controller.step(view)
        pre = rules.preconditions(view.glyphs, view.hero_row, view.hero_col, view.acquired_items)
        interesting = pre != (False, False) or recorder.last_ended
        if recorder.last_termination and (interesting or rng.random() < SAMPLE_RATE):
            crop = crop_view(view)
            skill_steps.append({
                "crop": {"chars": list(crop.chars), "colors": [list(r) for r in crop.colors],
                         "monsters": [list(r) for r in crop.monsters], "features": [list(r) for r in crop.features]},
                "num_items": int(view.acquired_items),
                "rule_pre": [bool(pre[0]), bool(pre[1])],
                "termination": [int(recorder.last_termination[0]), int(recorder.last_termination[1]),
                                int(recorder.last_termination[2]), int(recorder.last_termination[3]),
                                bool(recorder.last_termination[4]), bool(recorder.last_termination[5]),
                                int(recorder.last_termination[6])],
            })
    env.close()
    selections = _dedupe([_state_dict(s) for s in recorder.states])
    # Keep the episode's variety within the size budget: thin evenly, keep the first and last.
    selections = _thin(selections, MAX_SELECTIONS_PER_EPISODE)
    skill_steps = _thin_steps(skill_steps, MAX_SKILL_STEPS_PER_EPISODE)
    return FixtureEpisode(policy_name, seed, recorder.base_turns, steps, selections, skill_steps)


def _dedupe(states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop long runs of states that differ only in turn counters (e.g. a skill re-chosen in place)."""
    keep: list[dict[str, Any]] = []
    run = 0
    last: tuple[Any, ...] | None = None
    for s in states:
        key = tuple(v for k, v in s.items() if k not in ("turn", "step", "skill_turns", "skill_steps"))
        run = run + 1 if key == last else 1
        last = key
        if run <= MAX_SAME_IN_A_ROW:
            keep.append(s)
    return keep


def _thin(items: list[Any], n: int) -> list[Any]:
    if len(items) <= n:
        return items
    idx = sorted({round(i * (len(items) - 1) / (n - 1)) for i in range(n)})
    return [items[i] for i in idx]


def _thin_steps(steps: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Keep every step where a conditional skill may start (rare), thin the rest evenly."""
    rare = [s for s in steps if any(s["rule_pre"])]
    rest = [s for s in steps if not any(s["rule_pre"])]
    rare = _thin(rare, n // 2)
    return rare + _thin(rest, n - len(rare))


def record_fixture(plan: tuple[tuple[str, int, int, str], ...] = DEFAULT_PLAN, path: Path = FIXTURE_PATH,
                   progress: bool = True) -> StateFixture:
    """Play the plan's games and write the fixture atomically; returns what was written."""
    import nle
    from tqdm import tqdm

    episodes = [record_episode(*item) for item in tqdm(plan, desc="recording NLE episodes", disable=not progress)]
    names: dict[str, int] = {"": 0}

    def pack(step: dict[str, Any]) -> dict[str, Any]:
        # Monster and feature names repeat a lot: store them as indices into one table.
        crop = dict(step["crop"])
        for key in ("monsters", "features"):
            crop[key] = [[names.setdefault(n, len(names)) for n in row] for row in crop[key]]
        return {**step, "crop": crop}

    packed = [
        {"policy": e.policy, "seed": e.seed, "base_turns": e.base_turns, "steps": e.steps,
         "selections": e.selections, "skill_steps": [pack(s) for s in e.skill_steps]}
        for e in episodes
    ]
    data = {
        "format": FORMAT,
        "meta": {"nle": nle.__version__, "recorder": "python -m maestromotif.codegen.fixtures",
                 "record_base_turns": RECORD_BASE_TURNS, "plan": [list(p) for p in plan]},
        "names": list(names),
        "episodes": packed,
    }
    atomic_write_text(path, json.dumps(data, separators=(",", ":")) + "\n")
    return load_fixture(path)


def summary(fixture: StateFixture) -> dict[str, Any]:
    """Variety of a fixture: counts by depth, dungeon, skill and availability."""
    from collections import Counter

    from maestromotif.skills import rules

    states = [s for e in fixture.episodes for s in e.selections]
    steps = [s for e in fixture.episodes for s in e.skill_steps]
    return {
        "episodes": len(fixture.episodes),
        "states": len(states),
        "skill_steps": len(steps),
        "depths": dict(sorted(Counter(s["depth"] for s in states).items())),
        "dungeons": dict(sorted(Counter(s["dungeon"] for s in states).items())),
        "ended_skill": dict(sorted(Counter(s["skill"] for s in states).items())),
        "worshipper_available": sum(s["worshipper_available"] for s in states),
        "merchant_available": sum(s["merchant_available"] for s in states),
        "branch_depth_known": sum(s["branch_depth"] is not None for s in states),
        "step_rule_pre": [sum(s["rule_pre"][0] for s in steps), sum(s["rule_pre"][1] for s in steps)],
        "step_rule_terminations": sum(bool(rules.termination(*s["termination"])) for s in steps),
    }


def main(
    output: Annotated[Path, typer.Option(help="Where to write the fixture (JSON).")] = FIXTURE_PATH,
) -> None:
    """Play the recording plan's NetHack games (about ten seconds) and write the state fixture of the
    code-validation harness; prints its variety (depths, dungeons, availabilities) as JSON."""
    fixture = record_fixture(path=output)
    print(json.dumps({"path": str(output), "bytes": output.stat().st_size, **summary(fixture)}, indent=1))


if __name__ == "__main__":
    typer.run(main)
