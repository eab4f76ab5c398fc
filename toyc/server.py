"""The build server: `toyc build` and `toyc run` hand their build to a process that keeps the
compiler loaded and the last sessions in memory, as mypy's dmypy or Gradle's daemon do.

A `toyc build` whose Python has just started spends most of its time importing the compiler
and reading the state file; the server did both already, so a one-function edit costs what it
costs in `toyc watch`. `client.py` is the other end: how a build gets here, and how any problem
on the way becomes a build in-process.

The server (`python -m toyc.server SOCKET`, started by the first build that finds none) holds a
lock beside the socket (so there is one), accepts connections from its own user only
(SO_PEERCRED), serves one build at a time, and exits when idle for TOYC_SERVER_IDLE seconds
(600). It never answers with a stale result: before each build it checks that the client is
the same installation as itself and that its own code (the files of every module it loaded,
and the directories packages and plugins are installed in) is unchanged since it loaded it,
else it declines, and ends if its code changed; a session it kept is used only for the same
command in the same directory, and only while the output and the state file are still the
ones it left (`Session.current`); everything else an update checks as it always does.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import struct
import sys

from toyc.client import identity, send

IDLE_S = 600.0
COLLECT_AFTER_S = 2.0


# ---- the server -------------------------------------------------------------------------------

def receive_request(conn: socket.socket) -> tuple[dict | None, list[int]]:
    """The request, the one message a client sends (None at the end of the connection), and
    the descriptors that came with it (its standard input, output and error)."""
    import json

    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    if not data:
        return None, fds
    buf = bytearray(data)
    while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:4], "little"):
        more = conn.recv(1 << 16)
        if not more:
            for fd in fds:
                os.close(fd)
            return None, []
        buf += more
    return json.loads(buf[4 : 4 + int.from_bytes(buf[:4], "little")]), fds


def _stat(path: str) -> tuple[int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0, 0)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _installed() -> list:
    """The directories Python finds packages in, with the time of those that hold
    distributions (a plugin installed or removed changes it; see `plugins.entry_points`)."""
    from toyc.plugins import installed_in

    return [(p, installed_in(p)) for p in sys.path]


def code_changed(key: dict) -> bool:
    """Whether what the server's answers depend on besides the request changed: the files of
    the modules it loaded and what is installed, as `key` remembers them. Modules loaded since
    (a build imports some only when it needs them) are remembered from now on."""
    for m in list(sys.modules.values()):
        f = getattr(m, "__file__", None)
        if isinstance(f, str) and f not in key:
            key[f] = _stat(f)
    return key.get("") != _installed() or \
        any(_stat(p) != st for p, st in key.items() if p)


def serve(path: str) -> None:
    import fcntl

    lock = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # another server has it
    # A client's Ctrl-C comes as SIGINT, whatever the first client (a background job, say)
    # left its handler as.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    idle = float(os.environ.get("TOYC_SERVER_IDLE") or IDLE_S)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a server that died left it
    old = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    listener.listen(8)
    try:
        _warm_up()
        key: dict = {"": _installed()}
        code_changed(key)
        kept: dict = {}
        stats = {"pid": os.getpid(), "socket": path, "builds": 0, "idle_s": idle}
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
    request, fds = receive_request(conn)
    try:
        if request is not None and request.get("control") in ("status", "stop") and \
                request.get("identity") == identity():
            import resource

            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            send(conn, {**stats, "peak_mb": round(rss), "kept": [
                {"source": k[1], "output": k[2], "directory": k[0]} for k in kept]})
            return request["control"] != "stop"
        if request is None or len(fds) != 3:
            return True
        if request.get("identity") != identity():
            send(conn, {"declined": "another toyc installation"})
            return True
        if code_changed(key):
            send(conn, {"declined": "toyc changed since the server started"})
            return False
        send(conn, {"pid": os.getpid()})
        stats["builds"] += 1
        answer = _build(request, fds, kept)
        code_changed(key)  # (to remember what the build imported)
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
    with contextlib.suppress(OSError):
        send(conn, answer)
    return True


def _build(request: dict, fds: list[int], kept: dict) -> dict:
    from toyc.cli import run_served

    saved = (os.getcwd(), dict(os.environ), sys.stdin, sys.stdout, sys.stderr)
    # The client's streams, with the encoding and error handling the client has for them (its
    # locale's, or PYTHONIOENCODING's), line-buffered as a terminal's would be.
    kinds = request.get("streams") or [["utf-8", "strict"]] * 3
    streams = [os.fdopen(os.dup(fd), mode, buffering=1, encoding=encoding, errors=errors)
               for fd, mode, (encoding, errors) in zip(fds, "rww", kinds, strict=True)]
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
            serve(sys.argv[1])
