"""The `toyc` command's first step: hand a build to the build server (`server.py`), or else
run the command in this process (`cli.py`).

`toyc build` and `toyc run` go to the server when one is running: this module connects,
sends the arguments, the working directory, the environment and the umask, with standard
input, output and error themselves (SCM_RIGHTS: the server writes messages, and draws the
progress bar, where this process would have), waits for the exit status, and exits with it,
or for `toyc run` runs the program the server built. A Ctrl-C meanwhile is passed on to the
server, which stops the build as this process would have. It imports only what that takes, so
a served build starts as fast as Python does.

The socket is in `$TOYC_SERVER_DIR`, else `$XDG_RUNTIME_DIR/toyc`, else `/tmp/toyc-UID`: a
directory only its user can enter (one that is not is not used). There is one server per
Python, toyc installation, TOYC_PLUGINS and PYTHONPATH (`server-KEY.sock`); the request says
which, and a server that is not the client's declines.

Without a server (none is running, TOYC_SERVER=0, or anything goes wrong on the way: a refused
or broken connection, a server gone before it answered, one that declines) the command runs
in this process, as if there were none; when none was running, one is started in the
background for the next build.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # (not typing's: `toyc --version` imports nothing it does not need)
if TYPE_CHECKING:
    import socket


def identity() -> list[str]:
    """What decides which code and plugins Python loads: a client that differs in any of it
    has a server of its own."""
    return [sys.executable, os.path.dirname(os.path.abspath(__file__)),
            os.environ.get("TOYC_PLUGINS", ""), os.environ.get("PYTHONPATH", "")]


def socket_path() -> str | None:
    """Where this toyc's server listens, or None when there must be no server."""
    import zlib

    if os.environ.get("TOYC_SERVER", "1") == "0":
        return None
    directory = os.environ.get("TOYC_SERVER_DIR") or (
        os.path.join(os.environ["XDG_RUNTIME_DIR"], "toyc") if os.environ.get("XDG_RUNTIME_DIR")
        else f"/tmp/toyc-{os.getuid()}")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        st = os.lstat(directory)
    except OSError:
        return None
    if (st.st_mode & 0o170000) != 0o040000 or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None  # someone else's, or open to others: not a place for a socket
    key = zlib.crc32("\0".join(identity()).encode())
    return os.path.join(directory, f"server-{key:08x}.sock")


def send(conn: socket.socket, message: dict, fds: list[int] | None = None) -> None:
    """One message: its length (4 bytes, little-endian), then JSON."""
    import json
    import socket

    data = json.dumps(message).encode()
    framed = len(data).to_bytes(4, "little") + data
    if fds:
        socket.send_fds(conn, [framed], fds)
    else:
        conn.sendall(framed)


def read_message(reader) -> dict | None:
    """The next message from a connection's buffered reader (`conn.makefile("rb")`), None at
    its end. (Buffered: the server's answers can come in one piece with its greeting.)"""
    import json

    head = reader.read(4)
    if len(head) < 4:
        return None
    n = int.from_bytes(head, "little")
    data = reader.read(n)
    return json.loads(data) if len(data) == n else None


def served(argv: list[str]) -> dict | None:
    """Run `toyc ARGV` (a build, or a run's build) in the server. Its answer ({"status": N},
    and for a run {"exec": [...]}), or None if there is no server to take it (then one is
    started for the next time)."""
    import signal
    import socket

    path = socket_path()
    if path is None:
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        start(path)
        return None
    with conn:
        try:
            umask = os.umask(0)
            os.umask(umask)
            send(conn, {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                        "umask": umask, "identity": identity(),
                        # (what this process would have written its messages in)
                        "streams": [[getattr(f, "encoding", None) or "utf-8",
                                     getattr(f, "errors", None) or "strict"]
                                    for f in (sys.stdin, sys.stdout, sys.stderr)]},
                 [0, 1, 2])
            reader = conn.makefile("rb")
            hello = read_message(reader)
        except (OSError, ValueError):
            return None
        if not hello or "pid" not in hello:
            return None  # declined: build in-process
        while True:
            try:
                answer = read_message(reader)
            except KeyboardInterrupt:  # stop the build as Ctrl-C would stop it in-process
                try:
                    os.kill(hello["pid"], signal.SIGINT)
                except OSError:
                    pass
                continue
            except (OSError, ValueError):
                answer = None
            # (a server gone before it answered: the state it left says what to trust)
            return answer if answer and "status" in answer else None


def control(what: str) -> dict | None:
    """Ask the server `what` ("status" or "stop"): its answer, None if none is running."""
    import socket

    path = socket_path()
    if path is None:
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(30)
            conn.connect(path)
            send(conn, {"control": what, "identity": identity()})
            return read_message(conn.makefile("rb"))
    except (OSError, ValueError):
        return None


def start(path: str) -> None:
    """Start a server for `path` in the background, on its own."""
    import subprocess

    try:
        subprocess.Popen([sys.executable, "-m", "toyc.server", path],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
                         cwd="/")
    except OSError:
        pass


def run_program(command: list[str]) -> int:
    """`toyc run`'s last step: become the program."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(command[0], command)
    except OSError as e:
        print(f"toyc: error: cannot run {command[0]}: {e.strerror}", file=sys.stderr)
        return 1


def main() -> int:
    argv = sys.argv[1:]
    if argv == ["--version"]:  # (the one answer that needs nothing else)
        from toyc import __version__

        print(f"toyc {__version__}")
        return 0
    if argv[:1] in (["build"], ["run"]):
        try:
            answer = served(argv)
        except KeyboardInterrupt:
            return 130
        if answer is not None:
            if argv[0] == "run" and answer["status"] == 0 and answer.get("exec"):
                return run_program(answer["exec"])
            return answer["status"]
    from toyc.cli import main as in_process

    return in_process(argv, may_serve=False)


if __name__ == "__main__":
    sys.exit(main())
