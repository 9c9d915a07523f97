"""Parsing policy source from many threads at once (the agent's PlayTask handlers, codegen's
ValidateCode handlers) must not fail.

CPython 3.11 keeps the AST constructor's recursion counter per interpreter: when a garbage
collection during ``ast.parse`` runs a finalizer that yields the GIL to another parsing thread,
one of them fails with SystemError "AST constructor recursion depth mismatch". The agent load
benchmark hit it (UNKNOWN from PlayTask); the finalizers below provoke it within about a thousand
unlocked parses. All parsing goes through ``maestromotif.skills.sandbox.parse_source`` (a lock).
"""

from __future__ import annotations

import gc
import sys
import threading
import time

from maestromotif.codegen import ArtifactKind
from maestromotif.codegen.prompts import extract_code
from maestromotif.skills.reference import TASK_POLICIES, load_reference, reference_source


class _Finalizer:
    """Cyclic garbage whose finalizer yields the GIL, as grpc's and torch's objects may."""

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        time.sleep(0)


def test_parsing_from_many_threads_with_finalizers_running() -> None:
    names = sorted(TASK_POLICIES)
    fenced = {n: f"```python\n{reference_source(n)}\n```" for n in names}
    errors: list[str] = []
    switch, thresholds = sys.getswitchinterval(), gc.get_threshold()
    sys.setswitchinterval(1e-6)
    gc.set_threshold(50, 5, 5)

    def work(i: int) -> None:
        for k in range(60):
            name = names[(i + k) % len(names)]
            try:
                _Finalizer(), _Finalizer()
                load_reference(name)  # parse, check, compile
                extract_code(fenced[name], ArtifactKind.TASK_POLICY)  # parse in the codegen prompts
            except Exception as exc:  # noqa: BLE001 - every failure is collected and reported
                errors.append(f"{name}: {exc!r}"[:200])

    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        sys.setswitchinterval(switch)
        gc.set_threshold(*thresholds)
    assert not errors, errors[:3]
