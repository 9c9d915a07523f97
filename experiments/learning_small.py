"""Learning experiment: train the ``small`` preset for tens of minutes; do skill returns rise?

Steps (all real components; nothing here stands in for a service):
1. collect transitions from real games (the actors' wrapper: vectorized NetHack with the
   reference skill controllers) under a uniformly random policy;
2. reward models: either given bundles (``--bundles``, e.g. trained from embedded-LLM labels by
   ``maestromotif pipeline``), or bundles trained here on pairs labelled by a transparent rule
   that follows each skill's preference text (method.md 5.2): descender prefers going down,
   ascender going up, discoverer staying on the level with gold/kills/finds, worshipper altar
   messages, merchant selling. The rule tests the RL half (phase 4) without the annotator;
3. score the uniformly random play of step 1 (per-skill mean return per skill run, through
   the reward service, with the learner's run accounting): the *pure random* reference;
4. start reward + learner + actor services as processes (as ``maestromotif up`` does), train,
   poll ``GetStatus`` and record each skill's mean intrinsic return (last 200 runs) and how
   many runs it rests on;
5. evaluate the final checkpoint (``maestromotif.training.evaluate``): every skill run is played
   either by the trained policy or by uniformly random actions (a coin per run), so the random
   baseline starts from the same states as the trained runs, also for skills that pure random
   play never reaches;
6. write ``results.json`` and ``learning_curves.png``.

    # rule-labelled reward models, the method's batch and learning rate
    nice -n 10 .venv/bin/python experiments/learning_small.py --minutes 30 --out experiments/results/small
    # reward models from embedded-LLM labels (`maestromotif pipeline`), the run in the README
    .venv/bin/python experiments/learning_small.py --minutes 100 --bundles data/reward_bundles \
        --batch 1024 --learning-rate 3e-4 --out experiments/results/small-llm-long
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SKILLS = ("discoverer", "descender", "ascender", "worshipper", "merchant")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def collect(steps_per_env: int, envs: int, seed: int) -> dict[str, np.ndarray]:
    """Random-policy transitions: messages, depth change, skill, message count, done."""
    from maestromotif.env.vec import VecEnv
    from maestromotif.skills.controller import controller_factory

    rng = np.random.default_rng(seed)
    env = VecEnv([seed * 1000 + i for i in range(envs)], controller_factory=controller_factory("exploration", seed))
    obs = env.reset()
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("messages", "depth", "skills", "counts", "dones")}
    for _ in range(steps_per_env):
        # sample t: the observation (message, skill, count) and whether the action ended the episode
        out["messages"].append(obs["messages"].copy())
        out["depth"].append(obs["stat_changes"][:, 0].copy())
        out["skills"].append(obs["skills"].copy())
        out["counts"].append(obs["message_counts"].copy())
        obs, _, dones, _, _ = env.step(rng.integers(0, 28, envs))
        out["dones"].append(dones.astype(bool).copy())
    env.close()
    return {k: np.stack(v, axis=1) for k, v in out.items()}  # [envs, T, ...]


_RULES = {
    "discoverer": (r"gold|kill|destroy|you find|scroll|welcome to experience", 1.0),
    "worshipper": (r"altar|drop|cursed|uncursed|flash", 1.0),
    "merchant": (r"sell|offers|gold pieces for|shopkeeper|welcome to", 1.0),
    "descender": (r"descend|trap door|hole", 0.5),
    "ascender": (r"climb", 0.5),
}


def rule_score(skill: str, message: bytes, depth_change: float) -> float:
    """The labelling rule (see module docstring): higher = preferred by the skill."""
    text = message.rstrip(b"\0").decode("latin-1").lower()
    pattern, weight = _RULES[skill]
    score = weight if re.search(pattern, text) else 0.0
    if skill == "descender":
        score += 2.0 * depth_change
    elif skill == "ascender":
        score -= 2.0 * depth_change
    elif skill == "discoverer":
        score -= 2.0 * abs(depth_change)
    return score


def train_bundles(data: dict[str, np.ndarray], out: Path, pairs: int, seed: int) -> dict[str, dict]:
    from maestromotif.rewards.data import PreferenceData
    from maestromotif.rewards.train import TrainConfig, save_result, train_skill

    messages = data["messages"].reshape(-1, 256)
    depth = data["depth"].reshape(-1).astype(np.float32)
    rng = np.random.default_rng(seed)
    reports = {}
    for skill in SKILLS:
        scores = np.array([rule_score(skill, m.tobytes(), d) for m, d in zip(messages, depth)])
        # half the pairs contain a transition the rule prefers, so the signal is not too rare
        good = np.nonzero(scores > 0)[0]
        first = rng.integers(0, len(scores), pairs)
        if len(good):
            first[: pairs // 2] = rng.choice(good, pairs // 2)
        second = rng.integers(0, len(scores), pairs)
        swap = rng.random(pairs) < 0.5
        first, second = np.where(swap, second, first), np.where(swap, first, second)
        s1, s2 = scores[first], scores[second]
        labels = np.where(s1 > s2, 0, np.where(s2 > s1, 1, 2)).astype(np.int8)
        prefs = PreferenceData(
            pair_ids=np.array([f"{skill}-{i}" for i in range(pairs)], dtype=object),
            messages=np.stack([messages[first], messages[second]], axis=1),
            depth_change=np.stack([depth[first], depth[second]], axis=1),
            labels=labels,
        )
        # fewer pairs than the paper's 80k-200k: a higher learning rate than 1e-5 to fit in minutes
        result = train_skill(prefs, skill, TrainConfig(learning_rate=3e-4, epochs=8, threads=2), progress=False)
        save_result(result, out)
        reports[skill] = {k: v for k, v in result.report.items() if isinstance(v, (int, float, str, type(None)))}
        reports[skill]["label_counts"] = np.bincount(labels, minlength=4).tolist()
        print(f"reward model {skill}: {reports[skill]}", flush=True)
    return reports


def random_policy_returns(data: dict[str, np.ndarray], reward_address: str) -> dict[str, float]:
    """Score the random policy's transitions through the reward service; mean return per skill run."""
    from maestromotif.kit.client import ClientOptions, make_channel
    from maestromotif.training.skill_stats import SkillRunTracker
    from services.learner.server import RewardClient

    envs, steps = data["skills"].shape
    channel = make_channel(reward_address, ClientOptions(deadline_s=60.0))
    score = RewardClient(channel, 60.0)
    flat = score(
        data["skills"].reshape(-1),
        data["messages"].reshape(-1, 256),
        np.pad(data["depth"].reshape(-1, 1), ((0, 0), (0, 4))).astype(np.float32),
        data["counts"].reshape(-1).astype(np.float32),
    ).reshape(envs, steps)
    channel.close()
    tracker = SkillRunTracker(envs)
    runs: dict[int, list[float]] = {k: [] for k in range(5)}
    for t in range(steps):
        for run in tracker.step(data["skills"][:, t], flat[:, t], data["dones"][:, t]):
            runs[run.skill].append(run.ret)
    return {SKILLS[k]: float(np.mean(v)) for k, v in runs.items() if v}


def bundle_label_sources(bundles: Path) -> dict[str, str]:
    """Per skill, what decided the labels the bundle was trained on (``llm``, ``llm+depth_prior:W``,
    ``unrecorded`` for bundles made before this was recorded)."""
    from maestromotif.rewards.bundles import read_manifest

    out = {}
    for skill, entry in read_manifest(bundles)["skills"].items():
        try:
            report = json.loads((bundles / entry["path"] / "report.json").read_text())
        except (OSError, ValueError):
            report = {}
        out[skill] = report.get("label_source", "unrecorded")
    return out


def start_services(out: Path, bundles: Path, processes: int, envs: int, batch: int,
                   learning_rate: float) -> tuple[list, dict]:
    from maestromotif.kit.client import wait_for_serving

    ports = {n: (_free_port(), _free_port()) for n in ("reward", "learner", "actors")}
    sets = {
        "reward": [f"bundle_dir={bundles}", "threads=1"],
        "learner": [
            f"reward_address=127.0.0.1:{ports['reward'][0]}", f"train_dir={out}", "experiment=policy",
            "preset=small", f"batch_size={batch}", f"learning_rate={learning_rate}",
            "checkpoint_every_samples=500000",
        ],
        "actors": [f"learner_address=127.0.0.1:{ports['learner'][0]}", f"processes={processes}",
                   f"envs_per_process={envs}", "seed=7"],
    }
    procs = []
    for name in ("reward", "learner", "actors"):
        argv = [sys.executable, "-m", "maestromotif.kit", name, "--port", str(ports[name][0]),
                "--metrics-port", str(ports[name][1])]
        for item in sets[name]:
            argv += ["--set", item]
        log = open(out / f"{name}.log", "wb")
        procs.append(subprocess.Popen(argv, start_new_session=True, stdout=log, stderr=subprocess.STDOUT))
        wait_for_serving(f"127.0.0.1:{ports[name][0]}", timeout_s=300, alive=lambda p=procs[-1]: p.poll() is None)
    return procs, ports


def stop_services(procs: list) -> None:
    for p in reversed(procs):
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


MIN_RUNS = 20  # a skill's start value comes from the first statuses that rest on at least this many runs
SMOOTH = 5  # start and end are means over this many consecutive statuses (20 s apart)


def plot(history: list[dict], random_returns: dict[str, float], evaluation: dict | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, grid = plt.subplots(2, 5, figsize=(22, 8))
    for ax, skill in zip(grid[1], SKILLS):
        xs = [h["samples_trained"] for h in history if skill in h.get("skill_competence", {})]
        ys = [h["skill_competence"][skill] for h in history if skill in h.get("skill_competence", {})]
        ax.plot(xs, ys, label="training (last 200 runs)")
        if evaluation is not None:
            comparison = evaluation["skills"][skill]
            for kind, colour in (("trained", "green"), ("random", "red")):
                mean = comparison[kind].get("mean_competence")
                if mean is not None:
                    ax.axhline(mean, color=colour, linestyle="--",
                               label=f"final eval, {kind} runs (n={comparison[kind]['runs']})")
        ax.set_xlabel("samples trained")
        ax.set_ylabel("new squares per step" if skill == "discoverer" else "fraction of competent runs")
        ax.set_title(f"{skill}: competence")
        ax.legend(fontsize=7)
    axes = grid[0]
    for ax, skill in zip(axes, SKILLS):
        xs = [h["samples_trained"] for h in history if skill in h["skill_returns"]]
        ys = [h["skill_returns"][skill] for h in history if skill in h["skill_returns"]]
        ax.plot(xs, ys, label="training (last 200 runs)")
        if skill in random_returns:
            ax.axhline(random_returns[skill], color="grey", linestyle=":", label="pure random play")
        if evaluation is not None:
            comparison = evaluation["skills"][skill]
            for kind, colour in (("trained", "green"), ("random", "red")):
                mean = comparison[kind]["mean_return"]
                if mean is not None:
                    ax.axhline(mean, color=colour, linestyle="--",
                               label=f"final eval, {kind} runs (n={comparison[kind]['runs']})")
        runs = history[-1]["skill_runs"].get(skill, 0) if history else 0
        ax.set_title(f"{skill} ({runs:,} runs in training)")
        ax.set_xlabel("samples trained")
        ax.set_ylabel("mean intrinsic return per skill run")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def start_end(history: list[dict], skill: str) -> tuple[float | None, float | None, int, int]:
    """(start, end, runs behind start, runs at the end) of a skill's training curve.

    start: the mean of the first SMOOTH statuses that rest on >= MIN_RUNS runs of the skill (the
    first statuses that report it at all when it never gets that many); end: the mean of the last
    SMOOTH statuses.
    """
    seen = [h for h in history if skill in h["skill_returns"]]
    if not seen:
        return None, None, 0, 0
    first = next((i for i, h in enumerate(seen) if h["skill_runs"].get(skill, 0) >= MIN_RUNS), 0)
    head, tail = seen[first : first + SMOOTH], seen[-SMOOTH:]
    start = float(np.mean([h["skill_returns"][skill] for h in head]))
    end = float(np.mean([h["skill_returns"][skill] for h in tail]))
    return start, end, head[-1]["skill_runs"].get(skill, 0), tail[-1]["skill_runs"].get(skill, 0)


def competence_start_end(history: list[dict], skill: str) -> tuple[float | None, float | None]:
    """Start and end of the training competence curve, as ``start_end`` does for returns."""
    seen = [h for h in history if skill in h.get("skill_competence", {})]
    if not seen:
        return None, None
    first = next((i for i, h in enumerate(seen) if h["skill_runs"].get(skill, 0) >= MIN_RUNS), 0)
    head, tail = seen[first : first + SMOOTH], seen[-SMOOTH:]
    return (float(np.mean([h["skill_competence"][skill] for h in head])),
            float(np.mean([h["skill_competence"][skill] for h in tail])))


def summarize(history: list[dict], random_returns: dict[str, float], evaluation: dict | None) -> dict[str, dict]:
    summary = {}
    for skill in SKILLS:
        start, end, start_runs, end_runs = start_end(history, skill)
        comparison = evaluation["skills"][skill] if evaluation is not None else None
        c_start, c_end = competence_start_end(history, skill)
        summary[skill] = {
            "competence_start": c_start,
            "competence_end": c_end,
            "competent_runs": history[-1].get("skill_competent_runs", {}).get(skill) if history else None,
            "eval_competence_above_random": comparison.get("competence_above_random") if comparison else None,
            "start": start,
            "start_runs": start_runs,
            "end": end,
            "end_runs": end_runs,
            "rose_above_start": None if start is None or end is None else end > start,
            "pure_random_play": random_returns.get(skill),
            "eval_trained": comparison["trained"] if comparison else None,
            "eval_random": comparison["random"] if comparison else None,
            "eval_trained_above_random": comparison["trained_above_random"] if comparison else None,
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=Path("experiments/results/small"))
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--envs", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--collect-steps", type=int, default=2000, help="random-policy steps per env")
    parser.add_argument("--pairs", type=int, default=3000, help="labelled pairs per skill (CPU time: about a minute per skill)")
    parser.add_argument("--eval-steps", type=int, default=300_000, help="env steps of the final evaluation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bundles", type=Path, default=None,
                        help="existing reward bundles (e.g. trained from LLM labels by `maestromotif pipeline`) "
                             "instead of rule-labelled ones")
    parser.add_argument("--replot", action="store_true",
                        help="only recompute the summary and plot of an existing --out/results.json")
    args = parser.parse_args()
    out = args.out.resolve()
    if args.replot:
        result = json.loads((out / "results.json").read_text())
        result["summary"] = summarize(result["history"], result["random_policy"], result["evaluation"])
        (out / "results.json").write_text(json.dumps(result, indent=2))
        plot(result["history"], result["random_policy"], result["evaluation"], out / "learning_curves.png")
        print(json.dumps(result["summary"], indent=2))
        return
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    data = collect(args.collect_steps, 16, args.seed)
    print(f"collected {data['skills'].size} random-policy transitions in {time.time() - t_start:.0f}s", flush=True)
    if args.bundles is not None:
        bundles = args.bundles.resolve()
        reward_reports = {"bundles": str(bundles), "labels": "given bundles (not rule-labelled)",
                          "label_source": bundle_label_sources(bundles)}
    else:
        bundles = out / "bundles"
        reward_reports = train_bundles(data, bundles, args.pairs, args.seed)

    procs, ports = start_services(out, bundles, args.processes, args.envs, args.batch, args.learning_rate)
    history: list[dict] = []
    try:
        random_returns = random_policy_returns(data, f"127.0.0.1:{ports['reward'][0]}")
        print(f"random policy: {random_returns}", flush=True)
        from maestromotif.kit.client import ClientOptions, make_channel
        from maestromotif.v1 import learner_pb2, learner_pb2_grpc

        channel = make_channel(f"127.0.0.1:{ports['learner'][0]}", ClientOptions(deadline_s=30.0))
        stub = learner_pb2_grpc.LearnerStub(channel)
        t0 = time.time()
        while time.time() - t0 < args.minutes * 60:
            time.sleep(20)
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"a service exited with {dead[0].returncode}; see {out}/*.log")
            s = stub.GetStatus(learner_pb2.GetStatusRequest())
            entry = {
                "t": time.time() - t0,
                "samples_trained": s.samples_trained,
                "env_steps": s.env_steps,
                "policy_version": s.policy_version,
                "samples_per_second": s.samples_per_second,
                "policy_lag": s.mean_policy_lag,
                "losses": dict(s.losses),
                "skill_returns": dict(s.skill_returns),
                "skill_runs": dict(s.skill_runs),
                "skill_competence": dict(s.skill_competence),
                "skill_competent_runs": dict(s.skill_competent_runs),
            }
            history.append(entry)
            print(json.dumps(entry), flush=True)
            plot(history, random_returns, None, out / "learning_curves.png")
        channel.close()
    finally:
        stop_services(procs)  # the learner writes a last checkpoint on SIGTERM
    (out / "history.json").write_text(json.dumps(history))

    from tqdm import tqdm

    from maestromotif.training.evaluate import evaluate_skills

    print(f"evaluating the final checkpoint for {args.eval_steps:,} env steps", flush=True)
    with tqdm(total=args.eval_steps, unit="step", mininterval=10) as bar:
        evaluation = evaluate_skills(out / "policy", bundles, steps=args.eval_steps, num_envs=16,
                                     seed=args.seed + 1, progress=bar.update).to_dict()
    summary = summarize(history, random_returns, evaluation)
    result = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "reward_models": reward_reports,
        "random_policy": random_returns,
        "evaluation": evaluation,
        "summary": summary,
        "history": history,
        "wall_minutes": (time.time() - t_start) / 60,
    }
    (out / "results.json").write_text(json.dumps(result, indent=2))
    plot(history, random_returns, evaluation, out / "learning_curves.png")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
