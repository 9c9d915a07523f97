"""GPU check of the training path (run on a machine with CUDA; prints one JSON line per check).

- the ``paper`` preset trains through SF2's Learner on CUDA (finite losses, versions advance);
- the engine's batched inference + trajectory assembly + training thread on CUDA;
- a CUDA-trained checkpoint loads on CPU and CUDA and acts identically (deterministic actions).

    python experiments/gpu_check.py --out /tmp/gpu_check
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time

import numpy as np
import torch


def _obs(rng: np.random.Generator, n: int):  # noqa: ANN202
    from maestromotif.training.trajectories import StepObservation

    stats = rng.normal(size=(n, 35)).astype(np.float32)
    skills = rng.integers(0, 5, n).astype(np.uint8)
    stats[:, 30:] = 0
    stats[np.arange(n), 30 + skills] = 1
    messages = np.zeros((n, 256), np.uint8)
    messages[:, :20] = rng.integers(32, 127, (n, 20))
    return StepObservation(
        tty_chars=rng.integers(32, 127, (n, 12, 12), dtype=np.uint8),
        tty_colors=rng.integers(0, 16, (n, 12, 12), dtype=np.uint8),
        messages=messages,
        stats=stats,
        skills=skills,
        message_counts=rng.integers(1, 4, n).astype(np.float32),
        stat_changes=np.zeros((n, 5), np.float32),
        rewards=np.zeros(n, np.float32),
        dones=rng.random(n) < 0.01,
        time_outs=np.zeros(n, bool),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=tempfile.mkdtemp())
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    from maestromotif.rewards.model import RewardEnsemble, RewardNet
    from maestromotif.rewards.shaping import shape_rewards
    from maestromotif.training.acting import act
    from maestromotif.training.engine import TrainingEngine
    from maestromotif.training.settings import TrainingSettings
    from maestromotif.training.sf2 import LearnerDriver, load_policy_for_inference, rnn_size_of

    print(json.dumps({"cuda": torch.cuda.is_available(), "device": torch.cuda.get_device_name(0)}), flush=True)
    settings = TrainingSettings()  # defaults: preset auto (= paper on GPU), batch 4096
    driver = LearnerDriver(settings, args.out, "gpu")
    print(json.dumps({"preset": driver.preset, "learner_device": str(driver.device)}), flush=True)
    assert driver.preset == "paper" and driver.device.type == "cuda"

    # real reward models (untrained) + the one shaping rule, on the GPU
    rewards = RewardEnsemble([RewardNet() for _ in range(5)]).cuda().eval()
    thresholds = torch.tensor([0.95, 1.32, 1.27, 1.38, 1.34], device="cuda")

    def score(skills, messages, stat_changes, counts):  # noqa: ANN001, ANN202
        with torch.no_grad():
            raw = rewards(torch.from_numpy(messages).cuda(), torch.from_numpy(stat_changes).cuda())
            own = raw.gather(1, torch.from_numpy(skills.astype(np.int64)).cuda()[:, None]).squeeze(1)
            k = torch.from_numpy(skills.astype(np.int64)).cuda()
            return shape_rewards(own, torch.zeros(5, device="cuda")[k], torch.ones(5, device="cuda")[k],
                                 thresholds[k], torch.from_numpy(counts).cuda()).cpu().numpy()

    engine = TrainingEngine(driver.actor_critic, driver.device, rnn_size_of(driver.actor_critic), driver=driver,
                            score_fn=score, rollout=32, batch_size=4096, lock=driver.lock)
    actors = [engine.add_actor(256, f"a{i}") for i in range(2)]
    stop = threading.Event()

    def feed(actor_id: str, seed: int) -> None:
        rng = np.random.default_rng(seed)
        pool = [_obs(rng, 256) for _ in range(8)]
        i = 0
        while not stop.is_set():
            engine.step(actor_id, pool[i % 8])
            i += 1

    threads = [threading.Thread(target=feed, args=(a, i), daemon=True) for i, a in enumerate(actors)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    while driver.policy_version < 3:
        time.sleep(0.2)
    s0, v0, t1 = engine.samples_trained, driver.policy_version, time.perf_counter()
    time.sleep(args.seconds)
    s1, v1, t2 = engine.samples_trained, driver.policy_version, time.perf_counter()
    stop.set()
    for t in threads:
        t.join(timeout=10)
    print(json.dumps({
        "engine_samples_per_s": (s1 - s0) / (t2 - t1), "env_steps_per_s": engine.env_steps / (t2 - t0),
        "versions": [v0, v1], "losses": engine.last_losses, "errors": engine.errors[:3],
        "finite": all(np.isfinite(v) for v in engine.last_losses.values()),
    }), flush=True)
    path = engine.save_checkpoint()
    engine.close(save=False)

    rng = np.random.default_rng(1)
    obs = _obs(rng, 64)
    rnn = torch.randn(64, rnn_size_of(driver.actor_critic))
    results = {}
    for dev in ("cuda", "cpu"):
        model, info = load_policy_for_inference(path, dev)
        step, _ = act(model, obs.policy_obs(dev), rnn.to(dev), 0, deterministic=True)
        results[dev] = step
    same = bool(np.array_equal(results["cuda"].actions, results["cpu"].actions))
    diff = float(np.abs(results["cuda"].action_logits - results["cpu"].action_logits).max())
    print(json.dumps({"checkpoint": path, "same_actions_cpu_cuda": same, "max_logit_diff": diff,
                      "policy_version": info["policy_version"]}), flush=True)


if __name__ == "__main__":
    main()
