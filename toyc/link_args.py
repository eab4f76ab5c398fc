"""The linker inputs as a command line gives them: files, `-L DIR` and `-l NAME`, after the Toy
source of `toyc build`/`run`/`watch`, in gcc's order (`LinkArgs`, `split_link_args`). Nothing
is read or found here (`toyc.inputs` does that), so that the command line needs nothing heavy
to start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from toyc.source import UserError

# toyc's options that take a value, whose value is not a linker input
_VALUE_OPTIONS = ("-o", "--arch")


@dataclass
class LinkArgs:
    items: list[tuple[str, str]] = field(default_factory=list)  # ("file", path), ("lib", name)
    dirs: list[str] = field(default_factory=list)  # -L, in order
    spelling: list[str] = field(default_factory=list)  # all of them, as given

    def __bool__(self) -> bool:
        return bool(self.items)

    def spelled(self) -> list[str]:
        """As a command line gives them (for messages and the state)."""
        return self.spelling or [p if kind == "file" else f"-l{p}" for kind, p in self.items] \
            + [f"-L{d}" for d in self.dirs]


def split_link_args(argv: list[str]) -> tuple[list[str], LinkArgs]:
    """Take the linker inputs out of a subcommand's arguments (after the subcommand's name):
    every positional argument after the first (the Toy source) and -L/-l, up to `--`."""
    rest, link = [], LinkArgs()
    i, seen_source = 0, False
    while i < len(argv):
        a = argv[i]
        if a == "--":
            rest += argv[i:]
            break
        if a in ("-l", "-L"):
            if i + 1 == len(argv):
                raise UserError(f"{a} needs an argument")
            value = argv[i + 1]
            i += 2
        elif a.startswith(("-l", "-L")) and len(a) > 2:
            a, value = a[:2], a[2:]
            i += 1
        else:
            if a in _VALUE_OPTIONS and i + 1 < len(argv):
                rest += argv[i : i + 2]
                i += 2
                continue
            if a.startswith("-") and a != "-":
                rest.append(a)
            elif not seen_source:
                seen_source = True
                rest.append(a)
            else:
                link.items.append(("file", a))
                link.spelling.append(a)
            i += 1
            continue
        if a == "-l":
            link.items.append(("lib", value))
        else:
            link.dirs.append(value)
        link.spelling.append(a + value)
    return rest, link
