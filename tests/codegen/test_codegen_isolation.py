"""The isolated runner itself: network, fork, files, limits and timeouts (code that bypasses the allow-list)."""

from __future__ import annotations

import signal
import socket
import time

import pytest

from maestromotif.codegen.isolation import IsolationLimits, run_isolated

QUICK = IsolationLimits(wall_s=20.0, cpu_s=10)
# Imported before the chroot: connect() needs the idna codec for the host name.
PRELOAD = ("socket", "encodings.idna")


def test_runs_code_and_reports_layers() -> None:
    r = run_isolated("emit({'sum': request['a'] + request['b']})\nprint('hi')", {"a": 2, "b": 3}, limits=QUICK)
    assert r.ok, r.error
    assert r.events == ({"sum": 5},)
    assert r.output == "hi\n"
    for layer in ("rlimit-cpu", "rlimit-as", "rlimit-fsize", "rlimit-nproc", "empty-cwd", "close-fds",
                  "new-session", "wall-timeout"):
        assert layer in r.isolation
    assert "netns" in r.isolation or "seccomp" in r.isolation


def test_a_package_folder_on_the_parents_path_does_not_shadow_the_standard_library(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What opencv's failed bootstrap leaves behind in the images: its own package folder, which
    holds a ``typing`` package, on sys.path. The child must still import the real ``typing``."""
    pkg = tmp_path / "cv2"
    (pkg / "typing").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "typing" / "__init__.py").write_text("raise ImportError('the shadowing typing package')\n")
    (tmp_path / "rootmod.py").write_text("VALUE = 7\n")  # a real import root still reaches the child
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(pkg))
    r = run_isolated("import typing, rootmod\nemit({'ok': hasattr(typing, 'NamedTuple'), 'v': rootmod.VALUE})",
                     limits=QUICK, preload=("typing", "rootmod"))
    assert r.ok, (r.error, r.output)
    assert r.events == ({"ok": True, "v": 7},)


def test_socket_connect_to_loopback_is_blocked() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    code = (
        "import socket\n"
        "try:\n"
        "    s = socket.socket()\n"
        "    s.settimeout(2)\n"
        "    s.connect(('127.0.0.1', request))\n"
        "    emit({'connected': True})\n"
        "except OSError as e:\n"
        "    emit({'connected': False, 'error': repr(e)})\n"
    )
    try:
        r = run_isolated(code, port, preload=PRELOAD, limits=QUICK)
        server.setblocking(False)
        with pytest.raises(BlockingIOError):  # nobody connected
            server.accept()
    finally:
        server.close()
    assert r.ok, r.error
    assert r.events[0]["connected"] is False, r.events


def test_network_namespace_alone_blocks_loopback() -> None:
    # Without seccomp's socket refusal, the new network namespace has no usable loopback.
    code = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 9), timeout=2)\n"
        "    emit({'connected': True})\n"
        "except OSError as e:\n"
        "    emit({'connected': False, 'errno': e.errno})\n"
    )
    r = run_isolated(code, None, preload=PRELOAD, limits=IsolationLimits(skip_layers=("seccomp",)))
    assert r.ok, r.error
    if "netns" not in r.isolation:
        pytest.skip("this kernel does not allow a new network namespace here")
    assert "seccomp" not in r.isolation
    assert r.events[0]["connected"] is False


def test_fork_is_blocked() -> None:
    code = (
        "import os\n"
        "try:\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os._exit(0)\n"
        "    emit({'forked': True})\n"
        "except OSError as e:\n"
        "    emit({'forked': False, 'error': repr(e)})\n"
    )
    r = run_isolated(code, None, limits=QUICK)
    assert r.ok, r.error
    assert r.events[0]["forked"] is False


def test_fork_is_blocked_by_the_process_limit_alone() -> None:
    code = (
        "import os\n"
        "try:\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os._exit(0)\n"
        "    emit({'forked': True})\n"
        "except OSError as e:\n"
        "    emit({'forked': False})\n"
    )
    r = run_isolated(code, None, limits=IsolationLimits(skip_layers=("seccomp",)))
    assert r.ok, r.error
    if "setuid-nobody" not in r.isolation and "rlimit-nproc" not in r.isolation:
        pytest.skip("no process limit could be set here")
    assert r.events[0]["forked"] is False


def test_files_outside_the_temp_dir_are_out_of_reach(tmp_path) -> None:
    target = tmp_path / "escape.txt"
    code = (
        "import os\n"
        "out = {'listing': os.listdir('.')}\n"
        "for path in request:\n"
        "    try:\n"
        "        with open(path, 'w') as f:\n"
        "            f.write('x')\n"
        "        out[path] = 'written'\n"
        "    except OSError as e:\n"
        "        out[path] = 'refused'\n"
        "with open('inside.txt', 'w') as f:\n"
        "    f.write('ok')\n"
        "out['inside'] = 'written'\n"
        "emit(out)\n"
    )
    r = run_isolated(code, [str(target), "/tmp/mm-escape.txt", "../../escape.txt"], limits=QUICK)
    assert r.ok, r.error
    ev = r.events[0]
    assert ev["listing"] == []  # an empty working folder
    assert ev[str(target)] == "refused" and ev["/tmp/mm-escape.txt"] == "refused"
    assert ev["inside"] == "written"
    assert not target.exists()


def test_wall_clock_timeout_kills_the_group() -> None:
    t = time.monotonic()
    r = run_isolated("while True:\n    pass\n", None, limits=IsolationLimits(wall_s=1.5, cpu_s=30))
    assert r.timed_out and not r.ok
    assert "wall-clock" in (r.error or "")
    assert time.monotonic() - t < 10


def test_cpu_limit() -> None:
    r = run_isolated("while True:\n    pass\n", None, limits=IsolationLimits(wall_s=4, cpu_s=1))
    assert not r.ok
    # SIGXCPU at the soft limit (SIGKILL at the hard one a second later, or the wall clock, under load)
    assert r.returncode in (-signal.SIGXCPU, -signal.SIGKILL) or r.timed_out, (r.returncode, r.error)


def test_memory_limit() -> None:
    r = run_isolated("x = bytearray(3 * 1024 * 1024 * 1024)\n", None, limits=QUICK)
    assert not r.ok
    assert "MemoryError" in (r.error or "")


def test_output_is_bounded() -> None:
    r = run_isolated("while True:\n    print('x' * 1000)\n", None,
                     limits=IsolationLimits(wall_s=20, max_output_bytes=2000))
    assert not r.ok  # the file-size limit stops the printing
    assert len(r.output) < 2100 and r.output.endswith("[output truncated]")


def test_response_channel_is_bounded() -> None:
    r = run_isolated("while True:\n    emit({'x': 'y' * 1000})\n", None,
                     limits=IsolationLimits(wall_s=20, max_response_bytes=50_000))
    assert not r.ok
    assert len(r.events) < 60


def test_seccomp_alone_refuses_sockets() -> None:
    code = (
        "import socket\n"
        "try:\n"
        "    socket.socket()\n"
        "    emit({'socket': True})\n"
        "except OSError as e:\n"
        "    emit({'socket': False, 'errno': e.errno})\n"
    )
    r = run_isolated(code, None, preload=PRELOAD, limits=IsolationLimits(skip_layers=("netns",)))
    assert r.ok, r.error
    if "seccomp" not in r.isolation:
        pytest.skip("libseccomp is not available here")
    assert "netns" not in r.isolation
    assert r.events[0] == {"socket": False, "errno": 1}  # EPERM


def test_refuses_to_run_without_network_isolation() -> None:
    r = run_isolated("emit({'ran': True})\n", None, limits=IsolationLimits(skip_layers=("netns", "seccomp")))
    assert not r.ok and "refusing to run" in (r.error or "")
    assert r.events == ()


def test_landlock_alone_confines_files_tcp_and_signals(tmp_path) -> None:
    # The layers that need root (netns, chroot, setuid) and seccomp off: Landlock, which needs no
    # privilege, still keeps the code inside its folder (what a non-root container gets).
    target = tmp_path / "escape.txt"
    code = (
        "import os, socket\n"
        "out = {}\n"
        "try:\n"
        "    open(request, 'w').write('x')\n"
        "    out['write'] = 'written'\n"
        "except OSError:\n"
        "    out['write'] = 'refused'\n"
        "try:\n"
        "    out['read'] = len(open('/etc/hostname').read())\n"
        "except OSError:\n"
        "    out['read'] = 'refused'\n"
        "try:\n"
        "    s = socket.socket()\n"
        "    s.settimeout(1)\n"
        "    s.connect(('127.0.0.1', 9))\n"
        "    out['tcp'] = 'connected'\n"
        "except OSError as e:\n"
        "    out['tcp'] = e.errno\n"
        "try:\n"
        "    os.kill(os.getppid(), 0)\n"
        "    out['signal'] = 'sent'\n"
        "except OSError:\n"
        "    out['signal'] = 'refused'\n"
        "open('inside.txt', 'w').write('ok')\n"
        "emit(out)\n"
    )
    limits = IsolationLimits(skip_layers=("netns", "chroot", "setuid-nobody", "seccomp"), require_one_of=())
    r = run_isolated(code, str(target), preload=PRELOAD, limits=limits)
    assert r.ok, r.error
    if "landlock-fs" not in r.isolation:
        pytest.skip("this kernel has no Landlock")
    assert not {"netns", "chroot", "seccomp"} & set(r.isolation)
    ev = r.events[0]
    assert ev["write"] == "refused" and ev["read"] == "refused" and not target.exists()
    if "landlock-net" in r.isolation:
        assert ev["tcp"] == 13  # EACCES
    if "landlock-scope" in r.isolation:
        assert ev["signal"] == "refused"
