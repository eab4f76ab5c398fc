"""The `toyc` command: `build`, `run`, `watch`, `inspect`, `plugins`, `--version`, `--help`.

Quiet on success, like gcc (`build -v` prints what the update did in one line). Every failure
is a message on stderr and exit status 1: a program's errors as `file:line:col: error: ...`
with the source line, anything else as `toyc: error: ...`. A bug in toyc itself is reported as
an internal error, without a traceback unless the environment variable TOYC_DEBUG is set.
When the reader of toyc's output goes away (`toyc inspect OUT | head -1`), any command ends
at once and quietly, with the status of a tool killed by SIGPIPE.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import shutil
import signal
import sys
import traceback
from pathlib import Path

from toyc import __version__
from toyc.link_args import LinkArgs, split_link_args
from toyc.source import CompileError, UserError, default_output


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(1, f"toyc: error: {message}\n")


def _arg_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="toyc", description="Compile Toy programs to Linux executables "
                "(x86_64, and other architectures from plugins), and keep them up to date "
                "incrementally.")
    p.add_argument("--version", action="version", version=f"toyc {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    b = sub.add_parser("build", help="compile FILE.toy to an executable",
                       usage="toyc build [-h] [-o OUT] [options] FILE.toy [FILE.o | FILE.a | "
                       "FILE.so | -L DIR | -l NAME]...",
                       description="Compile FILE.toy to an executable (default: ./FILE), or "
                       "update the one a previous build made. A full build of a big program "
                       "uses every CPU (TOYC_JOBS=N: N processes). " + LINK_INPUTS)
    b.add_argument("file", metavar="FILE.toy")
    b.add_argument("-o", dest="output", metavar="OUT", help="write the executable to OUT")
    b.add_argument("--arch", default="x86_64", help="target architecture (default: x86_64)")
    b.add_argument("--time", action="store_true", help="print the time each pass took")
    b.add_argument("--full", action="store_true",
                   help="build from scratch instead of updating the previous output")
    b.add_argument("-v", "--verbose", action="store_true",
                   help="print what the build changed, in one line")
    b.add_argument("--strip", action="store_true",
                   help="leave out the debug info (DWARF), which is written by default")
    b.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar (drawn on a terminal when a full build takes long)")
    kind = b.add_mutually_exclusive_group()
    kind.add_argument("-c", dest="object", action="store_true",
                      help="write a relocatable object (default FILE.o) for a system linker")
    kind.add_argument("--lib", action="store_true",
                      help="write a static archive (default libFILE.a) holding that object")

    w = sub.add_parser("watch", help="rebuild FILE.toy incrementally on every save",
                       usage="toyc watch [-h] [-o OUT] [--arch ARCH] [--strip] [--run [--restart]] "
                       "FILE.toy [FILE.o | FILE.a | FILE.so | -L DIR | -l NAME]... [-- ARGS...]",
                       description="Build FILE.toy, then update the output each time the file "
                       "is saved, printing one line per update (or the errors). With --run, "
                       "also run it (with ARGS) and write every update into the running "
                       "program. Ctrl-C stops. " + LINK_INPUTS)
    w.add_argument("file", metavar="FILE.toy")
    w.add_argument("-o", dest="output", metavar="OUT", help="write the executable to OUT")
    w.add_argument("--arch", default="x86_64", help="target architecture (default: x86_64)")
    w.add_argument("--run", action="store_true",
                   help="run the program and write every update into it while it runs")
    w.add_argument("--restart", action="store_true",
                   help="with --run: restart the program when an update cannot be swapped in")
    w.add_argument("--strip", action="store_true",
                   help="leave out the debug info (DWARF), which is written by default")

    i = sub.add_parser("inspect", help="show how the linker laid out an output",
                       description="Show the Zig sections, atoms (with their capacity), free "
                       "lists, trampolines, TLS layout, exports and last updates of an "
                       "executable, object or archive toyc wrote.")
    i.add_argument("file", metavar="OUT")
    i.add_argument("--json", action="store_true", help="print the same as JSON")
    i.add_argument("--disasm", metavar="NAME",
                   help="the machine code of function NAME, with its relocations")
    i.add_argument("--map", metavar="OUT.svg",
                   help="draw the address space (sections, atoms, free room, trampolines)")

    sub.add_parser("plugins", help="list the plugins loaded",
                   description="List the plugins loaded (built-in, and from the 'toyc' "
                   "entry-point group; TOYC_PLUGINS=a,b loads only those), with their version "
                   "and the hooks each implements.")

    v = sub.add_parser("server", help="show or stop the build server",
                       description="toyc build and toyc run hand their build to a server "
                       "that keeps the compiler and the last builds in memory; it starts on "
                       "the first build, and ends after TOYC_SERVER_IDLE seconds (600) without "
                       "one. TOYC_SERVER=0 builds without it.")
    v.add_argument("action", choices=["status", "stop"])

    r = sub.add_parser("run", help="compile FILE.toy and run it",
                       usage="toyc run [-h] [--arch ARCH] FILE.toy [FILE.o | FILE.a | FILE.so | "
                       "-L DIR | -l NAME]... [-- ARGS...]",
                       description="Compile FILE.toy to a cached executable and run it with "
                       "ARGS; exit with the program's status. A program of another "
                       "architecture runs under qemu-ARCH when that is installed. "
                       + LINK_INPUTS)
    r.add_argument("file", metavar="FILE.toy")
    r.add_argument("--arch", default="x86_64", help="target architecture (default: x86_64)")
    r.add_argument("args", nargs=argparse.REMAINDER, metavar="-- ARGS",
                   help="arguments for the program, after --")
    return p


LINK_INPUTS = ("Linker inputs may follow FILE.toy, as gcc takes them: objects (.o), archives "
               "(.a), shared libraries (.so, or GNU ld scripts naming them), -L DIR, -l NAME "
               "(libNAME.so, else libNAME.a); with a shared library the executable is "
               "dynamically linked and has the C library (-lc is added if not given).")


def _cache_path(source: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "toyc" / "run"
    key = hashlib.sha256(str(Path(source).resolve()).encode()).hexdigest()[:16]
    return base / key / default_output(source)


def _run(args, link: LinkArgs, kept: dict | None = None) -> list[str]:
    """`toyc run`'s build: the command that runs the program."""
    from toyc.session import build

    exe = _cache_path(args.file)
    try:
        exe.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the cache directory {exe.parent}: {e.strerror}") from None
    build(args.file, str(exe), args.arch, link=link, kept=kept)
    program_args = args.args[1:] if args.args[:1] == ["--"] else args.args
    command = [str(exe), *program_args]
    if args.arch != platform.machine():
        # As binfmt_misc would: a foreign program runs under qemu's user-mode emulator.
        emulator = shutil.which(f"qemu-{args.arch}")
        if emulator is None:
            raise UserError(f"cannot run an {args.arch} program on this {platform.machine()} "
                            f"machine: qemu-{args.arch} is not installed (Debian: qemu-user); "
                            f"the executable is {exe}")
        command.insert(0, emulator)
    return command


def main(argv: list[str] | None = None, kept: dict | None = None,
         served: dict | None = None, may_serve: bool = True) -> int:
    """`toyc ARGV`, in this process (`client.py` tries the build server first, and says so
    with `may_serve`). In the build server, `kept` holds the sessions it keeps and `served`
    receives, for `toyc run`, the command to run (the client runs it)."""
    try:
        return _main(argv, kept, served, may_serve)
    except BrokenPipeError:
        # The reader of stdout (or stderr) went away, as in `toyc inspect OUT | head -1`: stop
        # quietly, as cat or gcc do. They die of SIGPIPE, which the shell reports as 128 + 13:
        # toyc exits with that status, so that a script (`set -o pipefail`) sees what it sees
        # for them; it does not restore SIGPIPE's default action to die of it, because that
        # would let it kill a `toyc watch` halfway through writing an output. Whatever
        # is left in stdout's buffer would fail again when Python flushes it at exit ("Exception
        # ignored ... BrokenPipeError"): stdout goes to /dev/null instead, as the Python docs
        # advise (the "Note on SIGPIPE" in the signal module's). A closed stderr needs nothing:
        # what toyc writes there ends with a newline, and stderr is flushed at each.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is not a file (a test's StringIO)
            pass
        finally:
            os.close(devnull)
        return 128 + signal.SIGPIPE


def run_served(argv: list[str], kept: dict) -> tuple[int, list[str] | None]:
    """A build (or a run's build) the build server was asked for: the status, and for a run
    the command the client is to run."""
    served: dict = {}
    try:
        status = main(argv, kept, served)
    except SystemExit as e:  # (argparse's: the client parsed the same arguments already)
        status = e.code if isinstance(e.code, int) else 1
    return status, served.get("exec")


def _main(argv: list[str] | None, kept: dict | None = None, served: dict | None = None,
          may_serve: bool = True) -> int:
    # A build allocates many small objects and frees few: the cycle collector would spend a
    # fifth of the time finding nothing. The process is short-lived (the build server
    # collects between builds).
    gc.disable()
    argv = list(sys.argv[1:] if argv is None else argv)
    given = list(argv)
    program_args = []
    link = LinkArgs()
    if argv[:1] and argv[0] in ("build", "watch", "run"):
        try:
            rest, link = split_link_args(argv[1:])
        except UserError as e:
            print(f"toyc: error: {e}", file=sys.stderr)
            return 1
        argv = argv[:1] + rest
    if argv[:1] == ["watch"] and "--" in argv:  # the program's own, never toyc's options
        i = argv.index("--")
        argv, program_args = argv[:i], argv[i + 1 :]
    args = _arg_parser().parse_args(argv)
    try:
        if may_serve and served is None and args.command in ("build", "run"):
            from toyc import client

            answer = client.served(given)
            if answer is not None:
                if args.command == "run" and answer["status"] == 0 and answer.get("exec"):
                    return client.run_program(answer["exec"])
                return answer["status"]
        if args.command in ("build", "watch"):
            output = default_output(args.file) if args.output is None else args.output
            if args.command == "build" and args.object and args.output is None:
                output += ".o"
            if args.command == "build" and args.lib and args.output is None:
                output = f"lib{output}.a"
            if not output:
                raise UserError("the output path (-o) is empty")
        if args.command == "build":
            # (imported here: `toyc --version` and `--help` need none of the compiler)
            from toyc.driver import Timings
            from toyc.progress import Progress
            from toyc.session import build

            timings = Timings(progress=Progress.for_terminal(args.quiet))
            try:
                summary = build(args.file, output, args.arch, full=args.full, timings=timings,
                                relocatable=args.object, library=args.lib,
                                debug=not args.strip, link=link, kept=kept)
            finally:  # (before any message: the bar goes first)
                timings.progress.close()
            if summary.full and summary.reason and (args.verbose or summary.reason_matters):
                print(f"toyc: full build: {summary.reason}", file=sys.stderr)
            if args.verbose:
                print(summary.line())
            if args.time:
                for name, seconds in timings.passes.items():
                    print(f"{name:>8}: {seconds * 1000:9.1f} ms", file=sys.stderr)
            return 0
        if args.command == "inspect":
            from toyc.inspect import (
                disassemble,
                inspect,
                render,
                render_disassembly,
                render_map,
            )

            if args.map:
                svg = render_map(inspect(args.file))
                try:
                    Path(args.map).write_text(svg)
                except OSError as e:
                    raise UserError(f"cannot write '{args.map}': {e.strerror or e}") from None
                return 0
            if args.disasm:
                report, text = disassemble(args.file, args.disasm), render_disassembly
            else:
                report, text = inspect(args.file), render
            print(json.dumps(report, indent=1) if args.json else text(report).rstrip("\n"))
            return 0
        if args.command == "server":
            from toyc import client

            answer = client.control(args.action)
            if answer is None:
                print("no build server is running" + (
                    " (TOYC_SERVER=0)" if os.environ.get("TOYC_SERVER") == "0" else ""))
            elif args.action == "stop":
                print(f"stopped the build server (pid {answer['pid']})")
            else:
                print(f"build server pid {answer['pid']} at {answer['socket']}: "
                      f"{answer['builds']} builds served, peak memory {answer['peak_mb']} MB, "
                      f"ends after {answer['idle_s']:.0f} s without a build")
                for k in answer["kept"]:
                    print(f"  keeps {k['output']} (from {k['source']}, in {k['directory']})")
            return 0
        if args.command == "plugins":
            from toyc.plugins import describe_plugins

            print("\n".join(describe_plugins()))
            return 0
        if args.command == "watch":
            from toyc.watch import watch

            if (program_args or args.restart) and not args.run:
                raise UserError("program arguments and --restart need --run")
            return watch(args.file, output, args.arch, program_args if args.run else None,
                         args.restart, debug=not args.strip, link=link)
        command = _run(args, link, kept)
        if served is not None:
            served["exec"] = command
            return 0
        from toyc.client import run_program

        return run_program(command)
    except CompileError as e:
        sys.stderr.write(e.render())
        n = len(e.diagnostics)
        sys.stderr.write(f"{n} error{'s' if n != 1 else ''} generated.\n" if n > 1 else "")
        return 1
    except UserError as e:
        print(f"toyc: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise  # the reader of the output went away: for main() to end quietly
    except Exception as e:  # a bug in toyc: say so, without a traceback
        if os.environ.get("TOYC_DEBUG"):
            traceback.print_exc()
        print(f"toyc: internal error: {type(e).__name__}: {e}\n"
              "toyc: this is a bug in toyc; set TOYC_DEBUG=1 to see where", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
