#!/usr/bin/env python3
"""Cut a pip-compile lock file (``--generate-hashes``, with ``# via`` notes) down to a subset.

The images install from ``requirements.lock`` (exact versions, hashes), but not every
image needs every package: the embedded LLM (llama-cpp-python and the GGUF part
packages) belongs only to annotator and codegen, and the CUDA images replace the CPU
torch. ``--drop NAME`` removes a package and, transitively, every package that only
the dropped ones required (read from the ``# via`` notes; ``-r``/``-c`` origins keep a
package). ``--exclude-from LOCK`` removes packages another lock already pins; ``--only
NAME`` keeps just the named packages (no dependencies).

Standard library only: it runs in the image's builder stage before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

_HEAD = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)==(\S+)")
_VIA_INLINE = re.compile(r"^\s+#\s+via\s+(\S.*)$")
_VIA_ALONE = re.compile(r"^\s+#\s+via\s*$")
_VIA_ITEM = re.compile(r"^\s+#\s{2,}(\S.*)$")


def canonical(name: str) -> str:
    """PEP 503 normalized name (``Foo_Bar`` and ``foo-bar`` are one package)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Block:
    name: str  # canonical
    version: str
    lines: list[str]
    via: list[str] = field(default_factory=list)  # canonical names, or '-r ...'/'-c ...' origins

    @property
    def is_root(self) -> bool:
        return any(v.startswith(("-r ", "-c ")) for v in self.via)


class LockError(ValueError):
    pass


def parse(text: str, source: str = "lock") -> tuple[list[str], list[Block]]:
    """Split a lock into its header lines (comments before the first package) and package blocks."""
    header: list[str] = []
    blocks: list[Block] = []
    in_via = False
    for number, line in enumerate(text.splitlines(), 1):
        head = _HEAD.match(line)
        if head:
            blocks.append(Block(canonical(head.group(1)), head.group(2), [line]))
            in_via = False
            continue
        if not blocks:
            header.append(line)
            continue
        block = blocks[-1]
        block.lines.append(line)
        if (m := _VIA_INLINE.match(line)) is not None:
            block.via.append(_origin(m.group(1)))
            in_via = False
        elif _VIA_ALONE.match(line):
            in_via = True
        elif in_via and (m := _VIA_ITEM.match(line)) is not None:
            block.via.append(_origin(m.group(1)))
        elif line.strip() and not line.lstrip().startswith(("--hash", "#")):
            raise LockError(f"{source}:{number}: unexpected line {line.strip()!r} (not a pip-compile lock?)")
    if not blocks:
        raise LockError(f"{source}: no 'name==version' entries found")
    return header, blocks


def _origin(text: str) -> str:
    text = text.strip()
    return text if text.startswith(("-r ", "-c ")) else canonical(text)


def select(blocks: list[Block], drop: set[str], exclude: set[str] = frozenset(),
           only: set[str] | None = None) -> list[Block]:
    """Blocks kept after dropping ``drop`` (and what only they needed) and ``exclude`` (exactly).

    With ``only``, just those packages are kept (after the other rules).
    """
    known = {b.name for b in blocks}
    for option, names in (("--drop", drop), ("--only", only or set())):
        unknown = sorted(canonical(d) for d in names if canonical(d) not in known)
        if unknown:
            raise LockError(f"{option}: not in the lock: {', '.join(unknown)}")
    dropped = {canonical(d) for d in drop}
    changed = True
    while changed:  # fixpoint: dropping one package can orphan its dependencies
        changed = False
        for b in blocks:
            if b.name in dropped or b.is_root or not b.via:
                continue
            if all(v in dropped for v in b.via):
                dropped.add(b.name)
                changed = True
    wanted = None if only is None else {canonical(o) for o in only}
    return [
        b for b in blocks
        if b.name not in dropped and b.name not in exclude and (wanted is None or b.name in wanted)
    ]


def _names(items: list[str]) -> set[str]:
    return {d.strip() for item in items for d in item.split(",") if d.strip()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lock", type=Path, help="pip-compile lock file (with hashes and '# via' notes)")
    parser.add_argument("--drop", action="append", default=[], metavar="NAME",
                        help="package to remove with what only it required; repeatable, or comma-separated")
    parser.add_argument("--exclude-from", action="append", default=[], type=Path, metavar="LOCK",
                        help="remove packages that this other lock pins; repeatable")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="keep only these packages; repeatable, or comma-separated")
    parser.add_argument("-o", "--output", type=Path, help="write here (default: stdout)")
    args = parser.parse_args(argv)
    try:
        header, blocks = parse(args.lock.read_text(encoding="utf-8"), str(args.lock))
        exclude: set[str] = set()
        for other in args.exclude_from:
            exclude |= {b.name for b in parse(other.read_text(encoding="utf-8"), str(other))[1]}
        drop = _names(args.drop)
        kept = select(blocks, drop, exclude, _names(args.only) or None)
    except (OSError, LockError) as exc:
        print(f"lockfilter: error: {exc}", file=sys.stderr)
        return 2
    out = "\n".join(header + [line for b in kept for line in b.lines]) + "\n"
    if args.output:
        args.output.write_text(out, encoding="utf-8")
    else:
        sys.stdout.write(out)
    print(f"lockfilter: kept {len(kept)} of {len(blocks)} packages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
