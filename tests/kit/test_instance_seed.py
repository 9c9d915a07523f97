"""Per-replica actor seeds: MAESTROMOTIF_ACTORS_SEED if set, else a stable hash of POD_NAME or the hostname."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from maestromotif.kit.config import instance_name, instance_seed, load_config


def test_pod_names_give_different_seeds_and_the_same_name_the_same_seed() -> None:
    names = [f"mm-maestromotif-actors-6d5f7c9b8-{suffix}" for suffix in ("x2k4q", "p9z7m", "a1b2c", "zzzzz")]
    seeds = [instance_seed(n) for n in names]
    assert len(set(seeds)) == len(names)
    assert seeds == [instance_seed(n) for n in names]
    assert all(0 <= s < 2**31 - 1 for s in seeds)


def test_seed_is_stable_across_processes() -> None:
    # Python salts str hashes per process; the seed must not depend on that.
    code = "from maestromotif.kit.config import instance_seed; print(instance_seed('actors-0'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    assert int(out.stdout) == instance_seed("actors-0")


def test_instance_name_prefers_pod_name() -> None:
    assert instance_name({"POD_NAME": "actors-abc"}) == "actors-abc"
    assert instance_name({"POD_NAME": "  "}) == socket.gethostname()
    assert instance_name({}) == socket.gethostname()
    with pytest.raises(ValueError):
        instance_seed("")


def test_actor_base_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.actors.server import ActorsConfig, base_seed

    for var in ("MAESTROMOTIF_ACTORS_SEED", "POD_NAME"):
        monkeypatch.delenv(var, raising=False)
    config = load_config(ActorsConfig, "actors")
    assert config.seed is None
    a = base_seed(config, {"POD_NAME": "actors-7f-aaaaa"})
    b = base_seed(config, {"POD_NAME": "actors-7f-bbbbb"})
    assert a != b and a == base_seed(config, {"POD_NAME": "actors-7f-aaaaa"})
    assert base_seed(config, {}) == instance_seed(socket.gethostname())
    monkeypatch.setenv("MAESTROMOTIF_ACTORS_SEED", "42")
    pinned = load_config(ActorsConfig, "actors")
    assert base_seed(pinned, {"POD_NAME": "actors-7f-aaaaa"}) == base_seed(pinned, {"POD_NAME": "x"}) == 42
