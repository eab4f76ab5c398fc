"""The build server: `toyc build` and `toyc run` hand their build to a process that keeps the
compiler loaded and the last sessions in memory, as mypy's dmypy or Gradle's daemon do.

A `toyc build` whose Python has just started spends most of its time importing the compiler
and reading the state file; the server did both already, so a one-function edit costs what it
costs in `toyc watch`. The client (this module's first half, which imports nothing heavy):

* finds the socket: `$TOYC_SERVER_DIR`, else `$XDG_RUNTIME_DIR/toyc`, else
  `/tmp/toyc-UID`, a directory only its user can enter (one not so is not used), and in it
  one socket per Python, toyc installation and TOYC_PLUGINS (`server-KEY.sock`);
* connects, and sends its arguments, working directory, environment and umask, with its
  standard input, output and error themselves (file descriptors, SCM_RIGHTS): the server
  writes messages, and draws the progress bar, where the client would have;
* waits for the exit status (a Ctrl-C is passed on to the server, which stops the build as it
  would stop in-process) and exits with it; for `toyc run`, then runs the program itself.

When there is no server, the client builds in-process, as without one, and starts a server in
the background for the next build. Any problem (no server, a refused or broken connection, a
server that went away before it answered, a server whose code is not the client's) is a build
in-process, never an error: the state file protects an output a server left half-updated.
TOYC_SERVER=0 turns the server off.

The server (`python -m toyc.server SOCKET`) holds a lock beside the socket (so there is one),
accepts connections from its own user only (SO_PEERCRED), serves one build at a time, and
exits when idle for TOYC_SERVER_IDLE seconds (600). It never answers with a stale result:
before each build it checks that its own code (the files of every module it loaded, and the
directories plugins are installed in) is unchanged since it started, else it declines and
exits; a session it kept is used only for the same command in the same directory, and only
while the output and the state file are still the ones it left (`Session.current`);
everything else the update checks as it always does.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
from pathlib import Path

IDLE_S = 600.0
COLLECT_AFTER_S = 2.0
_HEADER = struct.Struct("<I")


# ---- the client -------------------------------------------------------------------------------

def socket_path() -> Path | None:
    """Where this toyc's server listens, or None when there must be no server."""
    if os.environ.get("TOYC_SERVER", "1") == "0":
        return None
    base = os.environ.get("TOYC_SERVER_DIR")
    if base:
        directory = Path(base)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        directory = Path(os.environ["XDG_RUNTIME_DIR"]) / "toyc"
    else:
        directory = Path(f"/tmp/toyc-{os.getuid()}")
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(directory)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None  # someone else's, or open to others: not a place for a socket
    here = str(Path(__file__).resolve().parent)
    # (what decides which code and plugins Python loads: a client that differs in any of it
    # has a server of its own)
    key = hashlib.blake2b("\0".join([sys.executable, here, os.environ.get("TOYC_PLUGINS", ""),
                                     os.environ.get("PYTHONPATH", "")]).encode(),
                          digest_size=6).hexdigest()
    return directory / f"server-{key}.sock"


def _send(conn: socket.socket, message: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(conn, [_HEADER.pack(len(data)) + data], fds)
    else:
        conn.sendall(_HEADER.pack(len(data)) + data)


def _receive(conn: socket.socket, with_fds: int = 0) -> tuple[dict | None, list[int]]:
    """One message (None at the end of the connection), and the descriptors that came with
    it."""
    fds: list[int] = []
    if with_fds:
        data, fds, _, _ = socket.recv_fds(conn, 1 << 16, with_fds)
    else:
        data = conn.recv(1 << 16)
    if not data:
        return None, fds
    buf = bytearray(data)
    while len(buf) < _HEADER.size or len(buf) < _HEADER.size + _HEADER.unpack_from(buf)[0]:
        more = conn.recv(1 << 16)
        if not more:
            for fd in fds:
                os.close(fd)
            return None, []
        buf += more
    (n,) = _HEADER.unpack_from(buf)
    return json.loads(buf[_HEADER.size : _HEADER.size + n]), fds


def served(argv: list[str]) -> dict | None:
    """Run `toyc ARGV` (a build, or a run's build) in the server. Its answer ({"status": N},
    and for a run {"exec": [...]}), or None if there is no server to take it (then a server
    is started for the next time)."""
    path = socket_path()
    if path is None:
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        start(path)
        return None
    with conn:
        try:
            umask = os.umask(0)
            os.umask(umask)
            _send(conn, {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                         "umask": umask}, [0, 1, 2])
            hello, _ = _receive(conn)
        except (OSError, ValueError):
            return None
        if not hello or "pid" not in hello:
            return None  # declined (its code is not ours): build in-process
        while True:
            try:
                answer, _ = _receive(conn)
            except KeyboardInterrupt:  # stop the build as Ctrl-C would stop it in-process
                with contextlib.suppress(OSError):
                    os.kill(hello["pid"], signal.SIGINT)
                continue
            except (OSError, ValueError):
                answer = None
            # (a server gone before it answered: the state it left says what to trust)
            return answer if answer and "status" in answer else None


def control(what: str) -> dict | None:
    """Ask the server `what` ("status" or "stop"): its answer, None if none is running."""
    path = socket_path()
    if path is None:
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(30)
            conn.connect(str(path))
            _send(conn, {"control": what})
            answer, _ = _receive(conn)
            return answer
    except (OSError, ValueError):
        return None


def start(path: Path) -> None:
    """Start a server for `path` in the background, on its own."""
    with contextlib.suppress(OSError):
        subprocess.Popen([sys.executable, "-m", "toyc.server", str(path)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
                         cwd="/")


# ---- the server -------------------------------------------------------------------------------

def _stat(path: str) -> tuple[int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0, 0)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def code_changed(key: dict[str, tuple[int, int, int]]) -> bool:
    """Whether what the server's answers depend on besides the request changed: the files of
    the modules it loaded and the directories Python finds packages in (a plugin installed or
    removed), as `key` remembers them. Modules loaded since (a build imports some only when it
    needs them) are remembered from now on."""
    for m in list(sys.modules.values()):
        f = getattr(m, "__file__", None)
        if isinstance(f, str) and f not in key:
            key[f] = _stat(f)
    return any(_stat(p) != st for p, st in key.items())


def serve(path: Path) -> None:
    import fcntl

    lock = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # another server has it
    idle = float(os.environ.get("TOYC_SERVER_IDLE") or IDLE_S)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a server that died left it
    old = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old)
    listener.listen(8)
    try:
        _warm_up()
        key = {p: _stat(p) for p in sys.path if p}
        code_changed(key)
        kept: dict = {}
        stats = {"pid": os.getpid(), "socket": str(path), "builds": 0, "idle_s": idle}
        garbage = False
        while True:
            # Builds run with the cycle collector off, as in-process; the server collects
            # once no build has come for a moment, so that a burst of builds does not wait.
            listener.settimeout(COLLECT_AFTER_S if garbage else idle)
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                if not garbage:
                    return
                gc.collect()
                garbage = False
                continue
            except KeyboardInterrupt:  # a client's Ctrl-C that came after its build
                continue
            with conn:
                try:
                    garbage = True
                    if not _handle(conn, key, kept, stats):
                        return
                except (OSError, ValueError, KeyboardInterrupt):
                    pass
    finally:
        # Closed first: a client that connected after the last accept is refused, not left
        # waiting (it builds in-process).
        listener.close()
        with contextlib.suppress(OSError):
            os.unlink(path)  # (ours: no other server can bind without the lock)
        os.close(lock)


def _warm_up() -> None:
    """Import what a build needs, before the first one asks."""
    import toyc.cli  # noqa: F401
    import toyc.session  # noqa: F401
    from toyc.plugins import get_arch

    get_arch("x86_64")


def _handle(conn: socket.socket, key: dict, kept: dict, stats: dict) -> bool:
    """Serve one connection. False when the server must stop (asked to, or its code
    changed)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", creds)
    if uid != os.getuid():
        return True
    request, fds = _receive(conn, with_fds=3)
    try:
        if request is not None and request.get("control") in ("status", "stop"):
            import resource

            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            _send(conn, {**stats, "peak_mb": round(rss), "kept": [
                {"source": k[1], "output": k[2], "directory": k[0]} for k in kept]})
            return request["control"] != "stop"
        if request is None or len(fds) != 3:
            return True
        if code_changed(key):
            _send(conn, {"declined": "toyc changed since the server started"})
            return False
        _send(conn, {"pid": os.getpid()})
        stats["builds"] += 1
        answer = _build(request, fds, kept)
        code_changed(key)  # (to remember what the build imported)
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
    with contextlib.suppress(OSError):
        _send(conn, answer)
    return True


def _build(request: dict, fds: list[int], kept: dict) -> dict:
    from toyc.cli import run_served

    saved = (os.getcwd(), dict(os.environ), sys.stdin, sys.stdout, sys.stderr)
    streams = [os.fdopen(os.dup(fds[0]), "r"), os.fdopen(os.dup(fds[1]), "w"),
               os.fdopen(os.dup(fds[2]), "w")]
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.umask(request["umask"])
        sys.stdin, sys.stdout, sys.stderr = streams
        status, command = run_served(list(request["argv"]), kept)
    finally:
        for s in streams:
            with contextlib.suppress(OSError, ValueError):
                s.close()
        cwd, env, sys.stdin, sys.stdout, sys.stderr = saved
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
    return {"status": status, **({"exec": command} if command else {})}


if __name__ == "__main__":
    if len(sys.argv) == 2:
        with contextlib.suppress(KeyboardInterrupt):
            serve(Path(sys.argv[1]))
