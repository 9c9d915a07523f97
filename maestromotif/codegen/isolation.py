"""Run code in a separate, locked-down process and talk to it in JSON lines over a pipe.

The child is a fresh ``python -I`` (isolated mode: no user site, no PYTHON* variables) started in
its own session with an empty environment, stdin from /dev/null, stdout and stderr into one
anonymous file, and only two inherited descriptors besides those: the request pipe and the
response pipe. Before it runs the given code it applies, in this order, whatever the kernel
allows, and reports which layers are active:

- ``netns``: a new, empty network namespace (``unshare(CLONE_NEWNET)``, or with a new user
  namespace when unprivileged); even 127.0.0.1 is unreachable there;
- ``chroot``: the empty temporary working folder becomes ``/`` (nothing outside is visible);
- ``setuid-nobody``: root drops to uid/gid 65534 (so the process limit applies and nothing owned
  by root is writable);
- ``landlock-fs`` (and ``landlock-net``, ``landlock-scope`` on newer kernels): a Landlock domain
  that allows file access only beneath the temporary folder, no TCP bind/connect, and no signals
  or abstract sockets outside the domain; unprivileged, so it also holds where the chroot cannot
  be made (a non-root container);
- ``rlimit-cpu``, ``rlimit-as``, ``rlimit-fsize``, ``rlimit-nproc`` (0: no fork), ``rlimit-nofile``,
  ``rlimit-core``;
- ``seccomp``: a filter (libseccomp through ctypes) that makes ``socket``, ``connect``, ``fork``,
  ``clone``, ``execve``, ``ptrace``, ``kill``, ``mount``, ``unshare``, ... fail with EPERM;
- ``no-new-privs``.

The parent adds ``empty-cwd``, ``close-fds``, ``new-session`` and ``wall-timeout``: past the
wall-clock limit it kills the whole process group. Output is bounded (the file-size limit caps
stdout/stderr; only the first ``max_output_bytes`` are kept) and so is the response channel.

Modules the code needs are imported *before* the layers go up (``preload``), since the chroot
hides the file system afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import maestromotif

# The folder that holds the ``maestromotif`` package this process runs (a worktree or site-packages).
PACKAGE_ROOT = str(Path(maestromotif.__file__).resolve().parent.parent)
NOBODY = 65534
MAX_REQUEST_BYTES = 16 * 1024 * 1024

# Syscalls the seccomp filter refuses (EPERM). Threads are not needed in the child, so clone is refused too.
SECCOMP_DENIED: tuple[str, ...] = (
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "sendto", "sendmsg",
    "fork", "vfork", "clone", "clone3", "execve", "execveat", "ptrace", "process_vm_readv",
    "process_vm_writev", "kill", "tkill", "tgkill", "mount", "umount2", "unshare", "setns", "chroot",
    "pivot_root", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "reboot",
    "init_module", "finit_module", "delete_module", "kexec_load", "bpf", "perf_event_open", "keyctl",
    "add_key", "request_key", "userfaultfd", "io_uring_setup", "symlink", "symlinkat", "link", "linkat",
)


@dataclass(frozen=True, slots=True)
class IsolationLimits:
    """Resource limits of one isolated child."""

    wall_s: float = 30.0  # whole child, start-up included; then the process group is killed
    cpu_s: int = 20  # RLIMIT_CPU (SIGXCPU at the soft limit)
    address_space_mb: int = 1024  # RLIMIT_AS
    file_size_kb: int = 256  # RLIMIT_FSIZE: stdout/stderr and any file the child writes
    open_files: int = 32  # RLIMIT_NOFILE
    max_output_bytes: int = 16_000  # stdout+stderr kept for the report
    max_response_bytes: int = 4 * 1024 * 1024  # JSON lines the child may send back in all
    max_event_bytes: int = 1024 * 1024  # one JSON line
    skip_layers: tuple[str, ...] = ()  # layers not to raise (tests show each layer alone)
    # Fail closed: the code does not run unless at least one of these layers is up (no network).
    require_one_of: tuple[str, ...] = ("netns", "seccomp")

    def __post_init__(self) -> None:
        for name in ("wall_s", "cpu_s", "address_space_mb", "file_size_kb", "open_files", "max_output_bytes",
                     "max_response_bytes", "max_event_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"IsolationLimits.{name} must be a positive number, got {value!r}")


@dataclass(frozen=True, slots=True)
class IsolatedResult:
    """What came back from an isolated child."""

    events: tuple[dict[str, Any], ...]  # JSON objects the code sent with emit(), in order
    output: str  # stdout + stderr, truncated to max_output_bytes
    returncode: int | None  # negative: killed by that signal
    timed_out: bool  # killed at the wall-clock limit
    error: str | None  # why the run did not finish normally (None when the code returned)
    isolation: tuple[str, ...]  # layers that were active
    wall_s: float

    @property
    def ok(self) -> bool:
        return self.error is None


class IsolationError(RuntimeError):
    """The isolated child could not be started or talked to (not the code's fault)."""


def _signal_name(returncode: int | None) -> str:
    if returncode is None or returncode >= 0:
        return f"exit status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    why = {"SIGXCPU": " (CPU time limit)", "SIGKILL": " (killed)", "SIGSEGV": " (crash, e.g. stack or memory)",
           "SIGXFSZ": " (file size limit)"}.get(name, "")
    return f"{name}{why}"


# ------------------------------------------------------------------------------------------------
# parent side
# ------------------------------------------------------------------------------------------------


def run_isolated(
    code: str,
    payload: Any = None,
    *,
    preload: Sequence[str] = (),
    limits: IsolationLimits | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> IsolatedResult:
    """Run ``code`` (trusted driver source) in a fresh isolated child.

    The code sees ``payload`` (JSON-decoded) as ``request`` and sends results with ``emit(obj)``
    (one JSON object each). ``preload`` modules are imported before isolation. ``on_event`` is
    called with each event as it arrives. Never raises for anything the child does; raises
    ``IsolationError`` only when the child cannot be started.
    """
    limits = limits or IsolationLimits()
    request = json.dumps({"code": code, "payload": payload, "preload": list(preload),
                          "limits": _child_limits(limits)}).encode("utf-8")
    if len(request) > MAX_REQUEST_BYTES:
        raise ValueError(f"isolated request of {len(request)} bytes exceeds {MAX_REQUEST_BYTES}")
    workdir = tempfile.mkdtemp(prefix="mm-isolated-")
    out_file = tempfile.TemporaryFile()
    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    start = time.monotonic()
    proc: subprocess.Popen[bytes] | None = None
    try:
        if os.geteuid() == 0:
            os.chown(workdir, NOBODY, NOBODY)
        os.chmod(workdir, 0o700)
        # -I ignores PYTHONPATH: hand the child this process's import path explicitly. This package
        # goes first; the other roots go after the child's own path (standard library first), and a
        # package's own folder is no import root: opencv's bootstrap leaves site-packages/cv2 on
        # sys.path when its import fails (no libGL in the images), and its cv2/typing then
        # shadowed the standard library's typing in the child (every validation failed in a container).
        paths = [PACKAGE_ROOT, *(p for p in sys.path if p and os.path.isdir(p) and p != PACKAGE_ROOT
                                 and not os.path.isfile(os.path.join(p, "__init__.py")))]
        bootstrap = (
            "import sys, json; p = json.loads(sys.argv[1]); "
            "sys.path[:0] = p[:1]; sys.path += [x for x in p[1:] if x not in sys.path]; "
            "from maestromotif.codegen.isolation import child_main; child_main()"
        )
        try:
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and bootstrap
                [sys.executable, "-I", "-B", "-c", bootstrap, json.dumps(paths), str(req_r), str(resp_w), workdir],
                stdin=subprocess.DEVNULL,
                stdout=out_file,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},  # nothing inherited (-I ignores PYTHON* anyway)
                close_fds=True,
                pass_fds=(req_r, resp_w),
                start_new_session=True,
            )
        except OSError as exc:
            raise IsolationError(f"cannot start the isolated child: {exc}") from exc
        finally:
            os.close(req_r)
            os.close(resp_w)
        fds = (req_w, resp_r)
        req_w = resp_r = -1  # _converse closes both, whatever happens (no double close in a threaded server)
        events, error, timed_out = _converse(proc, *fds, request, limits, start, on_event)
        returncode = proc.returncode
        if error is None:
            if not events or events[-1].get("event") != "exit":
                error = f"the child ended without finishing ({_signal_name(returncode)})"
            elif not events[-1].get("ok"):
                error = str(events[-1].get("error", "unknown error"))[:2000]
        out_file.seek(0)
        raw = out_file.read(limits.max_output_bytes + 1)
        output = raw[: limits.max_output_bytes].decode("utf-8", "replace")
        if len(raw) > limits.max_output_bytes:
            output += "\n[output truncated]"
        layers = next((tuple(e.get("layers", ())) for e in events if e.get("event") == "isolation"), ())
        layers = (*layers, "empty-cwd", "close-fds", "new-session", "wall-timeout")
        user_events = tuple(e for e in events if e.get("event") not in ("isolation", "exit"))
        return IsolatedResult(user_events, output, returncode, timed_out, error, layers, time.monotonic() - start)
    finally:
        for fd in (req_w, resp_r):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        if proc is not None and proc.poll() is None:
            _kill_group(proc)
        out_file.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _child_limits(limits: IsolationLimits) -> dict[str, Any]:
    return {
        "cpu_s": int(limits.cpu_s),
        "address_space_mb": int(limits.address_space_mb),
        "file_size_kb": int(limits.file_size_kb),
        "open_files": int(limits.open_files),
        "max_response_bytes": int(limits.max_response_bytes),
        "max_event_bytes": int(limits.max_event_bytes),
        "skip_layers": [str(x) for x in limits.skip_layers],
        "require_one_of": [str(x) for x in limits.require_one_of],
    }


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the child leads its own session: its whole group
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()


def _converse(
    proc: subprocess.Popen[bytes],
    req_w: int,
    resp_r: int,
    request: bytes,
    limits: IsolationLimits,
    start: float,
    on_event: Callable[[dict[str, Any]], None] | None,
) -> tuple[list[dict[str, Any]], str | None, bool]:
    """Send the request, read JSON lines until EOF; kill the group on timeout or overflow."""
    deadline = start + limits.wall_s
    pending = memoryview(request)
    buf = bytearray()
    received = 0
    events: list[dict[str, Any]] = []
    error: str | None = None
    timed_out = False
    writing = True
    # selectors (epoll), not select(): a busy server's descriptors can be numbered past 1024.
    sel = selectors.DefaultSelector()
    try:
        os.set_blocking(req_w, False)
        sel.register(resp_r, selectors.EVENT_READ)
        sel.register(req_w, selectors.EVENT_WRITE)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                error = f"wall-clock limit of {limits.wall_s:g} s exceeded; the process group was killed"
                break
            ready = {key.fd for key, _ in sel.select(min(left, 0.5))}
            rlist, wlist = resp_r in ready, writing and req_w in ready
            if wlist:
                try:
                    n = os.write(req_w, pending[:65536])
                    pending = pending[n:]
                except BrokenPipeError:
                    pending = pending[:0]
                if not pending:
                    sel.unregister(req_w)
                    os.close(req_w)
                    req_w = -1
                    writing = False
            if rlist:
                chunk = os.read(resp_r, 65536)
                if not chunk:
                    break  # child closed its end: finished or died
                received += len(chunk)
                if received > limits.max_response_bytes:
                    error = f"the child sent more than {limits.max_response_bytes} bytes; killed"
                    break
                buf.extend(chunk)
                while b"\n" in buf:
                    line, _, rest = bytes(buf).partition(b"\n")
                    buf = bytearray(rest)
                    try:
                        event = json.loads(line)
                    except ValueError:
                        error = "the child sent a line that is not JSON; killed"
                        break
                    if not isinstance(event, dict):
                        error = "the child sent a JSON value that is not an object; killed"
                        break
                    events.append(event)
                    if on_event is not None:
                        on_event(event)
                if error:
                    break
                if len(buf) > limits.max_event_bytes:
                    error = f"the child sent a line longer than {limits.max_event_bytes} bytes; killed"
                    break
    finally:
        sel.close()
        if req_w >= 0:
            os.close(req_w)
        os.close(resp_r)
    if error is not None:
        _kill_group(proc)
    else:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            timed_out = True
            error = f"wall-clock limit of {limits.wall_s:g} s exceeded; the process group was killed"
            _kill_group(proc)
        # Whatever the child left running in its group (it cannot fork, but be sure) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    return events, error, timed_out


# ------------------------------------------------------------------------------------------------
# child side (runs in the fresh interpreter; keep it to the standard library)
# ------------------------------------------------------------------------------------------------

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_NO_NEW_PRIVS = 38
SCMP_ACT_ALLOW = 0x7FFF0000
# Landlock (linux/landlock.h); the syscall numbers are the same on every architecture.
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1


def _scmp_act_errno(errno: int) -> int:
    return 0x00050000 | (errno & 0xFFFF)


class _Seccomp:
    """The four libseccomp calls the filter needs, through ctypes (loaded before the chroot)."""

    def __init__(self) -> None:
        import ctypes
        import ctypes.util

        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)  # Debian's libseccomp2
        except OSError:
            lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so", use_errno=True)
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add.restype = ctypes.c_int
        lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
        lib.seccomp_load.restype = ctypes.c_int
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        self.lib = lib

    def install(self, denied: Sequence[str], errno: int) -> None:
        lib = self.lib
        ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
        if not ctx:
            raise OSError("seccomp_init failed")
        try:
            for name in denied:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr < 0:  # not a syscall on this architecture
                    continue
                rc = lib.seccomp_rule_add(ctx, _scmp_act_errno(errno), nr, 0)
                if rc < 0:
                    raise OSError(-rc, f"seccomp_rule_add({name}) failed")
            rc = lib.seccomp_load(ctx)
            if rc < 0:
                raise OSError(-rc, "seccomp_load failed")
        finally:
            lib.seccomp_release(ctx)


def _landlock(root: str) -> list[str]:
    """Allow file access only beneath ``root`` (and, where supported, no TCP, no outside signals)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                       ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    if abi < 1:
        return []
    fs = (1 << 13) - 1  # ABI 1: execute, read/write files, read dirs, remove, make any kind of node
    if abi >= 2:
        fs |= 1 << 13  # refer (rename/link across folders)
    if abi >= 3:
        fs |= 1 << 14  # truncate
    if abi >= 5:
        fs |= 1 << 15  # ioctl on devices

    class RulesetAttr(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    attr = RulesetAttr(fs, 0b11 if abi >= 4 else 0, 0b11 if abi >= 6 else 0)  # tcp bind+connect; unix+signal
    size = 24 if abi >= 6 else (16 if abi >= 4 else 8)
    ruleset = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return []
    try:
        folder = os.open(root, os.O_PATH | os.O_DIRECTORY)
        try:
            rule = PathBeneath(fs, folder)
            if libc.syscall(SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                            ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                return []
        finally:
            os.close(folder)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return []
        if libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            return []
    finally:
        os.close(ruleset)
    return ["landlock-fs"] + (["landlock-net"] if abi >= 4 else []) + (["landlock-scope"] if abi >= 6 else [])


def _apply_isolation(workdir: str, limits: dict[str, Any]) -> list[str]:
    """Raise the isolation layers the kernel allows (see the module docstring); return their names."""
    import ctypes
    import errno
    import resource

    skip = set(limits.get("skip_layers", ()))
    layers: list[str] = []
    libc = ctypes.CDLL(None, use_errno=True)
    seccomp: _Seccomp | None
    try:
        seccomp = _Seccomp()
    except OSError:
        seccomp = None

    if "netns" in skip:
        pass
    elif libc.unshare(CLONE_NEWNET) == 0:
        layers.append("netns")
    elif libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
        layers.append("netns")  # unprivileged: inside a new user namespace
        layers.append("userns")

    os.chdir(workdir)
    if "chroot" not in skip:
        try:
            os.chroot(workdir)
            os.chdir("/")
            layers.append("chroot")
        except OSError:
            pass
    if os.geteuid() == 0 and "setuid-nobody" not in skip:
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            layers.append("setuid-nobody")
        except OSError:
            pass

    if "landlock" not in skip:
        try:
            layers += _landlock("/" if "chroot" in layers else workdir)
        except OSError:
            pass

    def limit(name: str, which: int, soft: int, hard: int | None = None) -> None:
        if name in skip:
            return
        try:
            resource.setrlimit(which, (soft, soft if hard is None else hard))
            layers.append(name)
        except (OSError, ValueError):
            pass

    limit("rlimit-cpu", resource.RLIMIT_CPU, limits["cpu_s"], limits["cpu_s"] + 1)
    limit("rlimit-as", resource.RLIMIT_AS, limits["address_space_mb"] * 1024 * 1024)
    limit("rlimit-fsize", resource.RLIMIT_FSIZE, limits["file_size_kb"] * 1024)
    limit("rlimit-nproc", resource.RLIMIT_NPROC, 0)
    limit("rlimit-nofile", resource.RLIMIT_NOFILE, limits["open_files"])
    limit("rlimit-core", resource.RLIMIT_CORE, 0)
    # A write past the file-size limit then fails with EFBIG instead of killing the child.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
        layers.append("no-new-privs")
    if seccomp is not None and "seccomp" not in skip:
        try:
            seccomp.install(SECCOMP_DENIED, errno.EPERM)
            layers.append("seccomp")
        except OSError:
            pass
    return layers


def child_main() -> None:
    """Entry point of the isolated child: ``argv = [-c, import paths (JSON), request_fd, response_fd, workdir]``."""
    import importlib

    req_fd, resp_fd, workdir = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = os.read(req_fd, 1 << 20)
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            os._exit(3)
        chunks.append(chunk)
    os.close(req_fd)
    request = json.loads(b"".join(chunks))
    limits: dict[str, Any] = request["limits"]
    sent = 0

    def emit(obj: Any) -> None:
        nonlocal sent
        line = json.dumps(obj, default=str).encode("utf-8") + b"\n"
        if len(line) > limits["max_event_bytes"] or sent + len(line) > limits["max_response_bytes"]:
            raise OverflowError("isolated output channel limit reached")
        sent += len(line)
        view = memoryview(line)
        while view:
            view = view[os.write(resp_fd, view):]

    for module in request["preload"]:
        importlib.import_module(module)
    layers = _apply_isolation(workdir, limits)
    emit({"event": "isolation", "layers": layers})
    required = limits.get("require_one_of") or []
    if required and not set(required) & set(layers):
        emit({"event": "exit", "ok": False,
              "error": f"refusing to run: none of the isolation layers {', '.join(required)} could be raised here"})
        os._exit(0)
    namespace: dict[str, Any] = {"__name__": "__isolated__", "request": request["payload"], "emit": emit}
    try:
        exec(compile(request["code"], "<isolated>", "exec"), namespace)  # noqa: S102 - trusted driver code
        result: dict[str, Any] = {"event": "exit", "ok": True}
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        result = {"event": "exit", "ok": False, "error": f"{type(exc).__name__}: {str(exc)[:1000]}"}
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
        sys.stderr.flush()
    try:
        emit(result)
    except OverflowError:
        pass
    os._exit(0)
