"""The terminal view of a played episode (``maestromotif play``): screen, skill, switches, messages."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from maestromotif.skills.ids import SKILL_NAMES


def _skill(i: int) -> str:
    return SKILL_NAMES[i] if 0 <= i < len(SKILL_NAMES) else f"skill {i}"


class PlayView:
    """Folds PlayEvents into a rich renderable; ``run`` shows them live or prints frames."""

    def __init__(self, title: str, seed: int, history: int = 8) -> None:
        self.title = title
        self.seed = seed
        self.screen = ""
        self.skill = 0
        self.step = 0
        self.depth = 1
        self.dungeon = 0
        self.progress: Any = None
        self.switches: deque[str] = deque(maxlen=history)
        self.messages: deque[str] = deque(maxlen=history)
        self.end: Any = None
        self.frames = 0

    def apply(self, event: Any) -> bool:
        """Account for one PlayEvent; returns whether the screen changed (a new frame)."""
        kind = event.WhichOneof("event")
        if kind == "step":
            s = event.step
            self.step, self.skill, self.depth, self.dungeon = s.step, s.skill, s.depth, s.dungeon_number
            if s.screen:
                self.screen = s.screen
            self.progress = s.progress
            return True
        if kind == "skill_switch":
            w = event.skill_switch
            self.switches.append(f"step {w.step}: {_skill(w.from_skill)} -> {_skill(w.to_skill)}")
            self.skill = w.to_skill
        elif kind == "message":
            self.messages.append(f"{event.message.step}: {event.message.text}")
        elif kind == "end":
            self.end = event.end
            return True
        return False

    def renderable(self) -> Any:
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        where = "Gnomish Mines" if self.dungeon == 2 else ("main dungeon" if self.dungeon == 0 else f"dungeon {self.dungeon}")
        head = f"{self.title} | seed {self.seed} | step {self.step} | depth {self.depth} ({where}) | skill [bold]{_skill(self.skill)}[/]"
        if self.progress is not None:
            p = self.progress
            head += (f" | task: legacy {'done' if p.legacy_success else p.legacy_count}, "
                     f"strict {'done' if p.strict_success else p.strict_count}")
        side = Table.grid(padding=(0, 1))
        side.add_row("[bold]skill switches[/]")
        for line in self.switches:
            side.add_row(line)
        side.add_row("")
        side.add_row("[bold]messages[/]")
        for line in self.messages:
            side.add_row(Text(line[:70]))
        parts: list[Any] = [Text.from_markup(head)]
        grid = Table.grid(padding=(0, 2))
        grid.add_row(Panel(Text(self.screen or "(no screen yet)"), padding=0), side)
        parts.append(grid)
        if self.end is not None:
            e = self.end
            parts.append(Text.from_markup(
                f"[bold]episode over[/]: {e.reason} after {e.steps} steps; success {e.success}, count {e.count:g}; "
                f"steps per skill " + ", ".join(f"{_skill(i)} {n}" for i, n in enumerate(e.skill_steps))
                + (f"; policy error: {e.error}" if e.error else "")))
        return Group(*parts)

    def run(self, events: Iterable[Any], console: Any, *, live: bool = True) -> None:
        """Show the stream: a live view on a terminal, else every frame printed in turn."""
        if live and console.is_terminal:
            from rich.live import Live

            with Live(self.renderable(), console=console, auto_refresh=False, transient=False) as view:
                for ev in events:
                    if self.apply(ev):
                        self.frames += 1
                        view.update(self.renderable(), refresh=True)
            return
        for ev in events:
            if self.apply(ev):
                self.frames += 1
                console.print(self.renderable())
