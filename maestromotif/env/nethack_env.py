"""NetHack (NLE 1.0.0) as the method plays it: a neutral human male Monk, no pet,
the Discrete(28) macro action set with its hidden keystroke rules
(method.md section 2), seeded so that every episode gets its own dungeon,
reproducibly.

The env drives ``nle.nethack.Nethack`` directly rather than ``nle.env.NLE``:
the gym layer's prompt handling differs from the method's and costs time on
every step. NLE writes its observations into numpy buffers we hand it, so a
vectorized env can give each game a row of one big batch array and compute
the compact observation for all games at once (see ``vec.py``).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Final

import gymnasium as gym
import numpy as np
from nle import nethack

from maestromotif.env import compact
from maestromotif.env.actions import (
    BASE_KEYS,
    KEY_ESC,
    KEY_SELF,
    KEY_SPACE,
    NUM_ACTIONS,
    REST_KEYS,
    Action,
    check_action,
)
from maestromotif.env.view import GameView

# NLE observation keys the env asks for; everything else is never computed.
RAW_KEYS: Final = (
    "glyphs",
    "blstats",
    "message",
    "program_state",
    "misc",
    "inv_letters",
    "inv_oclasses",
    "inv_strs",
    "tty_chars",
    "tty_colors",
)

# The character of method.md 2.1. NetHack's wizard mode renames the player, so
# role/race/gender/alignment are set as options too, not only through the name.
PLAYER_NAME: Final = "Agent-mon-hum-neu-mal"
OPTIONS: Final[tuple[str, ...]] = (
    "role:monk",
    "race:human",
    "gender:male",
    "align:neutral",
    "pettype:none",
    "paranoid_confirmation:none",
    "autopickup",
    "pickup_types:$?!/%",
    "pickup_burden:unencumbered",
    "color",
    "disclose:+i +a +v +g +c +o",
    "nobones",
    "nolegacy",
    "nocmdassist",
    "nosparkle",
    "runmode:teleport",
    "showexp",
    "showscore",
    "time",
    # no mention_walls (method.md 2.1). Autopickup exceptions and message
    # filters are config-file-only in NetHack and NLE 1.0 cannot pass a config
    # file, so corpse/glove/robe pickup rules are not reproduced and the
    # "You see"/"You hear" filter lives in this wrapper.
)

MAX_EPISODE_STEPS: Final = 10_000
# bound on hidden keys typed inside one agent step (prompts, --More--, menus)
MAX_HIDDEN_KEYS: Final = 256
MESSAGE_LRU_SIZE: Final = 20

HIDDEN_PREFIXES: Final = (b"You see", b"You hear")
KEY_MESSAGES: Final = (b"You descend the stairs", b"You climb up the stairs", b"You are frozen")
PASS_WORDS: Final = (b"eat", b"attack", b"direction?", b"pray", b"drop", b"drink", b"Sell")
CONFIDENT: Final = b"You feel more confident"
SPELLS: Final = {b"healing": 0, b"protection": 1, b"sleep": 2}
SPELL_HEALING: Final = 0

_SELECT_RE: Final = re.compile(rb"^What do you want to (eat|drink)\? \[([^\]]*)\]")
_LETTER_RE: Final = re.compile(rb"[A-Za-z]")

# plain ints: IntEnum comparisons cost more on the per-step path
_NW, _REST, _CAST, _DROP = int(Action.NW), int(Action.REST), int(Action.CAST), int(Action.DROP)
_SINGLE_KEY: Final = frozenset(range(NUM_ACTIONS)) - {_REST, _CAST, _DROP}

# pending-prompt states between agent steps
_NONE, _SELECT, _YN = 0, 1, 2

_DROP_EXCLUDED: Final = np.zeros(256, dtype=bool)
_DROP_EXCLUDED[[nethack.FOOD_CLASS, nethack.COIN_CLASS]] = True


def raw_fields() -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Per-env shape and dtype of every NLE buffer the env uses."""
    return {
        k: (tuple(nethack.OBSERVATION_DESC[k]["shape"]), np.dtype(nethack.OBSERVATION_DESC[k]["dtype"]))
        for k in RAW_KEYS
    }


def allocate_raw(n: int) -> dict[str, np.ndarray]:
    """Zeroed batch buffers [n, ...] for ``n`` games; row i is game i's buffer."""
    return {k: np.zeros((n, *shape), dtype=dt) for k, (shape, dt) in raw_fields().items()}


def episode_seeds(seed: int, episode: int) -> tuple[int, int]:
    """NetHack (core, disp) seeds of episode ``episode`` of the env seeded ``seed``.

    Derived with numpy's SeedSequence so neighbouring env seeds or episode
    indices give unrelated dungeons. 63-bit values: NLE takes C longs.
    """
    if seed < 0 or episode < 0:
        raise ValueError(f"seed and episode must be >= 0, got seed={seed}, episode={episode}")
    state = np.random.SeedSequence([seed, episode]).generate_state(2, dtype=np.uint64)
    return int(state[0] >> np.uint64(1)), int(state[1] >> np.uint64(1))


class MessageCounter:
    """Per-episode occurrences of each message, in a small LRU table (method.md 2.3).

    ``count(m)`` counts the current sighting, so the first sighting gives 1;
    a message evicted from the table starts again at 1.
    """

    __slots__ = ("_table", "_size")

    def __init__(self, size: int = MESSAGE_LRU_SIZE) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self._size = size
        self._table: OrderedDict[bytes, int] = OrderedDict()

    def reset(self) -> None:
        self._table.clear()

    def count(self, message: bytes) -> int:
        table = self._table
        c = table.get(message)
        if c is None:
            c = 1
            if len(table) >= self._size:
                table.popitem(last=False)
        else:
            c += 1
            table.move_to_end(message)
        table[message] = c
        return c


def hide_messages(top_line: bytes) -> bytes:
    """Drop the messages starting "You see"/"You hear" from a top line.

    NetHack's config file would hide them (MSGTYPE=hide) so they are never
    shown; NLE 1.0 cannot take one, so the wrapper removes them. The tty
    joins the messages of one turn on the top line with two spaces.
    """
    if top_line.startswith(HIDDEN_PREFIXES) and b"  " not in top_line:
        return b""
    return b"  ".join(m for m in top_line.split(b"  ") if not m.startswith(HIDDEN_PREFIXES))


def _inventory(buf: dict[str, np.ndarray]) -> dict[int, bytes]:
    """Inventory letter -> description (slow; only at reset and on eats)."""
    out: dict[int, bytes] = {}
    for letter, s in zip(buf["inv_letters"].tolist(), buf["inv_strs"]):
        if letter:
            out[letter] = s.tobytes().partition(b"\0")[0]
    return out


class NetHackMonk(gym.Env):
    """One NetHack game per the method, with a gymnasium interface.

    ``step`` returns the compact observation of this one env (the fields of
    ``compact.FIELDS`` without the batch axis); the skill fields hold skill 0
    unless a vectorized env with controllers fills them. Episodes end at
    death (terminated) or after ``max_episode_steps`` agent steps
    (truncated); call ``reset`` after either (the vectorized envs do it
    automatically).

    ``buffers``: optional dict of per-env NLE buffers (rows of batch arrays
    from ``allocate_raw``) for NLE to write into; by default the env owns them.
    ``pass_climb_prompts``: also hand prompts containing "climb" to the agent
    (the goldenexit evaluation).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 42}

    def __init__(
        self,
        seed: int,
        *,
        buffers: dict[str, np.ndarray] | None = None,
        max_episode_steps: int = MAX_EPISODE_STEPS,
        wizard: bool = False,
        pass_climb_prompts: bool = False,
        extra_options: tuple[str, ...] = (),
    ) -> None:
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        self.seed_value = int(seed)
        self.max_episode_steps = int(max_episode_steps)
        self.wizard = wizard
        self._pass_words = PASS_WORDS + ((b"climb",) if pass_climb_prompts else ())
        fields = raw_fields()
        if buffers is None:
            buffers = {k: np.zeros(shape, dtype=dt) for k, (shape, dt) in fields.items()}
        for k, (shape, dt) in fields.items():
            b = buffers.get(k)
            if b is None or b.shape != shape or b.dtype != dt or not b.flags.c_contiguous:
                raise ValueError(f"buffers[{k!r}] must be a C-contiguous {dt} array of shape {shape}")
        self.buf = buffers
        self._nh = nethack.Nethack(
            observation_keys=RAW_KEYS,
            playername=PLAYER_NAME,
            ttyrec=None,
            options=OPTIONS + tuple(extra_options),
            wizard=wizard,
        )
        # hand NLE our buffers; we read them, never the tuple step() returns
        self._nh._obs_buffers = dict(buffers)
        self._nh._pynethack.set_buffers(**buffers)
        self._game = self._nh._pynethack
        self._misc = buffers["misc"]
        self._msg_buf = buffers["message"]
        self._blstats = buffers["blstats"]

        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self.observation_space = gym.spaces.Dict(
            {
                name: gym.spaces.Box(
                    low=-np.inf if dt.kind == "f" else np.iinfo(dt).min,
                    high=np.inf if dt.kind == "f" else np.iinfo(dt).max,
                    shape=shape,
                    dtype=dt,
                )
                for name, (shape, dt) in compact.FIELDS.items()
            }
        )

        self.episode = -1  # index of the current episode (0 after the first reset)
        self.episode_step = 0
        self.done = True
        self.message = b""
        self.message_count = 1
        self.just_eaten = False
        self.last_action = -1
        self.spell = 0
        self.start_letters = np.zeros(256, dtype=bool)
        self.counter = MessageCounter()
        self._pending = _NONE
        self._first_offered = -1
        self._select_verb = b""
        self._score = 0
        # tests set a list here to record each step's message before hiding
        self.trace: list[bytes] | None = None
        # tests: answer wizard mode's "Advance skills without practice?" with yes
        self.wizard_free_advance = False

    # ---------------------------------------------------------------- raw API
    def reset_game(self) -> None:
        """Start the next episode on its own dungeon (no observation built)."""
        self.episode += 1
        core, disp = episode_seeds(self.seed_value, self.episode)
        self._nh.set_initial_seeds(core, disp, False)
        self._game.reset()
        self.done = bool(self._game.done())
        # past the welcome --More-- and anything else before the first move
        for _ in range(MAX_HIDDEN_KEYS):
            if self.buf["program_state"][3] and not self._misc[2]:  # in_moveloop, no --More--
                break
            self._send(KEY_SPACE if self._misc[2] else KEY_ESC)
        else:
            raise RuntimeError(f"NetHack did not reach its first move (seed {self.seed_value}, episode {self.episode})")
        self.episode_step = 0
        self.last_action = -1
        self.just_eaten = False
        self._pending = _NONE
        inv = _inventory(self.buf)
        self.start_letters[:] = False
        self.start_letters[list(inv)] = True
        self.spell = 0
        for desc in inv.values():
            if b"spellbook of " in desc:
                self.spell = SPELLS.get(desc.split(b"spellbook of ", 1)[1].strip(), 0)
        self._score = int(self._blstats[nethack.NLE_BL_SCORE])
        self.counter.reset()
        self._finish_message()

    def act(self, action: int) -> tuple[float, bool, bool]:
        """One agent step: (score delta, terminated, truncated). Validates ``action``."""
        a = check_action(action)
        if self.done:
            raise RuntimeError("step() called on a finished episode: call reset() first")
        self.just_eaten = False
        eat_letter = -1
        eat_before = b""
        pending, self._pending = self._pending, _NONE
        kept: list[bytes] = []
        confident = [False]
        if pending == _SELECT:
            # "what do you want to eat/drink": NW picks the first letter offered, anything else cancels
            if a == _NW and self._first_offered > 0:
                if self._select_verb == b"eat":
                    eat_letter = self._first_offered
                    eat_before = _inventory(self.buf).get(eat_letter, b"")
                self._send(self._first_offered)
            else:
                self._send(KEY_ESC)
        elif pending == _YN:
            self._send(BASE_KEYS[a])  # y = yes (NW), n = no (SE), Enter = default
        elif a in _SINGLE_KEY:
            self._send(BASE_KEYS[a])
        elif a == _REST:
            for k in REST_KEYS:
                self._send(k)
        elif a == _CAST:
            self._send(BASE_KEYS[a])
            if self._misc[2] and not self.done:  # the spell menu is open: spell a
                self._send(ord("a"))
                if self.spell == SPELL_HEALING and self._misc[0] and b"direction?" in self._raw_message():
                    self._send(KEY_SELF)
        else:  # DROP
            letter = self._droppable_letter()
            if letter > 0:
                self._send(BASE_KEYS[a])
                if self._misc[0] and not self.done:
                    self._send(letter)
            else:
                self._send(KEY_ESC)
        self._settle(kept, confident)
        if confident[0] and not self.done and self._pending == _NONE:
            self._enhance(kept)
        if eat_letter > 0 and not self.done:
            self.just_eaten = _inventory(self.buf).get(eat_letter, b"") != eat_before
        self.episode_step += 1
        self.last_action = a
        if kept and not self.done:
            self._keep(kept[-1])
        self._finish_message()
        score = int(self._blstats[nethack.NLE_BL_SCORE])
        reward = float(score - self._score) if not self.done else 0.0
        self._score = score
        terminated = self.done
        truncated = not terminated and self.episode_step >= self.max_episode_steps
        if truncated:
            self.done = True
        return reward, terminated, truncated

    # ------------------------------------------------------------- internals
    def _send(self, key: int) -> None:
        if not self.done:
            self._game.step(key)
            self.done = bool(self._game.done())

    def _raw_message(self) -> bytes:
        return self._msg_buf.tobytes().partition(b"\0")[0]

    def _settle(self, kept: list[bytes], confident: list[bool]) -> None:
        """Type the hidden keys: skip --More--, Esc text prompts, pass or Esc y/n prompts."""
        misc = self._misc
        for _ in range(MAX_HIDDEN_KEYS):
            if self.done:
                return
            in_yn, in_getlin, xwait = misc.tolist()
            if not (in_yn or in_getlin or xwait):
                msg = self._raw_message()
                if CONFIDENT in msg:
                    confident[0] = True
                return
            msg = self._raw_message()
            if CONFIDENT in msg:
                confident[0] = True
            if self.trace is not None:  # tests: every message seen behind the hidden keys
                self.trace.append(msg)
            if xwait:
                for km in KEY_MESSAGES:
                    if km in msg:
                        kept.append(msg)
                        break
                self._send(KEY_SPACE)
            elif in_getlin:
                self._send(KEY_ESC)
            elif any(w in msg for w in self._pass_words):
                m = _SELECT_RE.match(msg)
                if m is not None:
                    self._pending = _SELECT
                    self._select_verb = m.group(1)
                    letter = _LETTER_RE.search(m.group(2))
                    self._first_offered = letter.group(0)[0] if letter else -1
                else:
                    self._pending = _YN
                return
            else:
                self._send(KEY_ESC)
        # a game stuck in hidden prompts would loop forever: fail loudly
        raise RuntimeError(
            f"more than {MAX_HIDDEN_KEYS} hidden keys in one step (message {self._raw_message()!r}, misc {misc.tolist()})"
        )

    def _enhance(self, kept: list[bytes]) -> None:
        """Auto-enhance after "You feel more confident": #enhance, first entry."""
        self._send(BASE_KEYS[Action.ENHANCE])
        for _ in range(4):  # wizard mode first asks whether to advance without practice
            if self.done or not self._misc[0]:
                break
            self._send(ord("y") if self.wizard_free_advance else KEY_ESC)
        if self._misc[2] and not self.done:
            self._send(ord("a"))
        self._settle(kept, [False])

    def _keep(self, msg: bytes) -> None:
        """Put a key message skipped behind --More-- back into the message buffer."""
        self._write_message(msg)

    def _write_message(self, msg: bytes) -> None:
        """Replace the message and the tty's top line, which shows it too."""
        row = self._msg_buf
        row[:] = 0
        b = np.frombuffer(msg[: row.shape[0] - 1], dtype=np.uint8)
        row[: b.shape[0]] = b
        top = self.buf["tty_chars"][0]
        top[:] = KEY_SPACE
        n = min(b.shape[0], top.shape[0])
        top[:n] = b[:n]
        if n == 0:
            self.buf["tty_colors"][0, :] = 0

    def _finish_message(self) -> None:
        """Hide "You see"/"You hear", update the message and its episode count."""
        msg = self._raw_message()
        if self.trace is not None:
            self.trace.append(msg)
        if b"You see" in msg or b"You hear" in msg:
            msg = hide_messages(msg)
            self._write_message(msg)
        self.message = msg
        self.message_count = self.counter.count(msg)

    def _droppable_letter(self) -> int:
        """First inventory letter acquired this episode that is neither food nor coins."""
        letters = self.buf["inv_letters"]
        ok = (letters != 0) & ~_DROP_EXCLUDED[self.buf["inv_oclasses"]] & ~self.start_letters[letters]
        idx = np.flatnonzero(ok)
        return int(letters[idx[0]]) if idx.size else -1

    def acquired_items(self) -> int:
        letters = self.buf["inv_letters"]
        ok = (letters != 0) & ~_DROP_EXCLUDED[self.buf["inv_oclasses"]] & ~self.start_letters[letters]
        return int(np.count_nonzero(ok))

    def extras(self) -> tuple[int, int, int]:
        """Stats entries 27..29: starting spell, potion slots, food slots."""
        oc = self.buf["inv_oclasses"]
        return self.spell, int(np.count_nonzero(oc == nethack.POTION_CLASS)), int(np.count_nonzero(oc == nethack.FOOD_CLASS))

    def view(self, acquired_items: int | None = None) -> GameView:
        """The controller's view of the current state (arrays are live buffers).

        ``acquired_items``: the count if the caller computed it already (vec envs do, in batch).
        """
        bl = self._blstats
        return GameView(
            tty_chars=self.buf["tty_chars"],
            tty_colors=self.buf["tty_colors"],
            hero_row=int(bl[nethack.NLE_BL_Y]) + 1,
            hero_col=int(bl[nethack.NLE_BL_X]),
            blstats=bl,
            glyphs=self.buf["glyphs"],
            message=self.message,
            acquired_items=self.acquired_items() if acquired_items is None else acquired_items,
            just_eaten=self.just_eaten,
            episode_step=self.episode_step,
            last_action=self.last_action,
        )

    def compact(self, skill: int = 0, depth_change: float = 0.0) -> dict[str, np.ndarray]:
        """This env's compact observation (one row of ``compact.FIELDS``)."""
        out = compact.allocate(1)
        bl = self._blstats[None]
        compact.crop_around_hero(self.buf["tty_chars"][None], bl[:, 1] + 1, bl[:, 0], out["tty_chars"])
        compact.crop_around_hero(self.buf["tty_colors"][None], bl[:, 1] + 1, bl[:, 0], out["tty_colors"])
        out["messages"][0] = self._msg_buf
        compact.fill_stats(bl, np.asarray([self.extras()], dtype=np.float32), np.asarray([skill]), out["stats"])
        out["skills"][0] = skill
        out["message_counts"][0] = self.message_count
        out["stat_changes"][0, 0] = depth_change
        return {k: v[0] for k, v in out.items()}

    # ------------------------------------------------------------- gymnasium
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if seed is not None:  # gymnasium convention: reseed and restart the episode sequence
            if seed < 0:
                raise ValueError(f"seed must be >= 0, got {seed}")
            self.seed_value = int(seed)
            self.episode = -1
        self.reset_game()
        return self.compact(), self._info(None)

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        before = self._blstats.copy()
        reward, terminated, truncated = self.act(action)
        return self.compact(), reward, terminated, truncated, self._info(before)

    def _info(self, before: np.ndarray | None) -> dict[str, Any]:
        """method.md 2.3 ``info`` as far as the env owns it; dlvl/gold/xlvl/timestep are of the previous obs."""
        bl = self._blstats if before is None else before
        return {
            "dlvl": int(bl[nethack.NLE_BL_DEPTH]),
            "gold": int(bl[nethack.NLE_BL_GOLD]),
            "xlvl": int(bl[nethack.NLE_BL_XP]),
            "timestep": int(bl[nethack.NLE_BL_TIME]),
            "kill": b"kill" in self.message or b"destroy" in self.message,
            "just_eaten": self.just_eaten,
            "message_count": self.message_count,
            "episode": self.episode,
            "episode_step": self.episode_step,
        }

    def render(self) -> str:  # type: ignore[override]
        return "\n".join(r.tobytes().decode("latin-1") for r in self.buf["tty_chars"])

    def close(self) -> None:
        if self._nh is not None:
            self._nh.close()
            self._nh = None  # type: ignore[assignment]

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
