"""GNU ld scripts given as linker inputs, as the system's `libc.so` is one:

    /* GNU ld script ... */
    OUTPUT_FORMAT(elf64-x86-64)
    GROUP ( /lib/x86_64-linux-gnu/libc.so.6 /usr/lib/x86_64-linux-gnu/libc_nonshared.a
            AS_NEEDED ( /lib64/ld-linux-x86-64.so.2 ) )

This module owns telling such a script from the other inputs (`file_kind`) and reading the
inputs it names (`parse_script`); finding and reading those files is the caller's. Only what
input scripts hold is understood: comments, `OUTPUT_FORMAT`, `GROUP`, `INPUT` and, inside
those, `AS_NEEDED`; file names are separated by blanks or commas, may be quoted, and `-lNAME`
names a library to search for. Anything else (a full linker script with SECTIONS, a symbol
assignment, a typo) is a `LinkError` naming the file and line.

GNU ld looks for a relative path named in a script in the script's directory, then the
current directory, then the library search path (when no sysroot is configured); a `-l` name
is searched for as on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass

from linker.archive import is_archive
from linker.elf_file import LinkError

THIN_MAGIC = b"!<thin>\n"
COMMANDS = ("OUTPUT_FORMAT", "GROUP", "INPUT")
# How much of a file is looked at to tell text from binary
_SAMPLE = 4096
_TEXT_CONTROLS = frozenset(b"\t\n\r\f\v")


@dataclass(frozen=True, slots=True)
class ScriptInput:
    name: str  # the path as written, or NAME of `-lNAME`
    library: bool  # `-lNAME`: libNAME.so or libNAME.a in the library directories
    as_needed: bool  # inside AS_NEEDED: a shared library needed only if it is used
    # Which GROUP of the script holds it, counting from 0 (its archives are searched again
    # until nothing more is loaded); None: named by INPUT
    group: int | None
    line: int  # where the script names it

    def __str__(self) -> str:
        return f"-l{self.name}" if self.library else self.name


@dataclass
class LinkerScript:
    path: str
    inputs: list[ScriptInput]  # in the order the script names them
    output_format: str | None  # the BFD target OUTPUT_FORMAT names (its default one), if any


def file_kind(data: bytes, path: str) -> str:
    """What an input file is, as GNU ld decides: "elf", "archive", or else "script" (ld
    treats any file it does not recognise as a linker script). A binary file that is
    neither is a LinkError here rather than a syntax error on its first bytes."""
    if data[:4] == b"\x7fELF":
        return "elf"  # possibly truncated: the ELF reader says so
    if is_archive(data) or data.startswith(THIN_MAGIC):
        return "archive"
    if _looks_binary(data[:_SAMPLE]):
        raise LinkError(f"{path}: not an ELF object, archive or linker script")
    return "script"


def _looks_binary(sample: bytes) -> bool:
    if any(b < 0x20 and b not in _TEXT_CONTROLS or b == 0x7F for b in sample):
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as e:
        # a character cut by the end of the sample is not a sign of binary data
        return not (e.reason == "unexpected end of data" and len(sample) == _SAMPLE)
    return False


@dataclass(slots=True)
class _Token:
    text: str
    line: int
    quoted: bool = False


def _tokens(text: str, path: str) -> list[_Token]:
    """Words, quoted names and the punctuation `( ) , ;`, comments dropped."""
    out: list[_Token] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise LinkError(f"{path}:{line}: a comment (/*) that is never closed")
            line += text.count("\n", i, end)
            i = end + 2
        elif c in "(),;":
            out.append(_Token(c, line))
            i += 1
        elif c == '"':
            end = text.find('"', i + 1)
            if end < 0 or "\n" in text[i:end]:
                raise LinkError(f"{path}:{line}: a quoted name that is never closed")
            out.append(_Token(text[i + 1 : end], line, quoted=True))
            i = end + 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in '(),;"' \
                    and not text.startswith("/*", i):
                i += 1
            out.append(_Token(text[start:i], line))
    return out


class _Parser:
    def __init__(self, tokens: list[_Token], path: str):
        self.tokens = tokens
        self.path = path
        self.pos = 0
        self.inputs: list[ScriptInput] = []
        self.output_format: str | None = None
        self.groups = 0

    def error(self, line: int, message: str) -> LinkError:
        return LinkError(f"{self.path}:{line}: {message}")

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self) -> _Token | None:
        tok = self.peek()
        self.pos += tok is not None
        return tok

    def last_line(self) -> int:
        return self.tokens[-1].line if self.tokens else 1

    # script = { command | ";" }
    def script(self) -> None:
        while (tok := self.next()) is not None:
            if tok.text == ";" and not tok.quoted:
                continue
            if tok.quoted or tok.text not in COMMANDS:
                if tok.text == ")" and not tok.quoted:
                    raise self.error(tok.line, "unbalanced parentheses: ')' without '('")
                if tok.text == "AS_NEEDED" and not tok.quoted:
                    raise self.error(tok.line, "AS_NEEDED outside GROUP or INPUT")
                raise self.error(tok.line, f"unknown command {tok.text!r}: an input linker "
                                 "script may hold only OUTPUT_FORMAT, GROUP, INPUT and "
                                 "AS_NEEDED")
            open_ = self.open(tok)
            if tok.text == "OUTPUT_FORMAT":
                self.formats(open_)
            else:
                group = None
                if tok.text == "GROUP":
                    group = self.groups
                    self.groups += 1
                self.list(open_, group, as_needed=False)

    def open(self, command: _Token) -> _Token:
        tok = self.next()
        if tok is None or tok.text != "(" or tok.quoted:
            line = tok.line if tok is not None else command.line
            raise self.error(line, f"expected '(' after {command.text}")
        return tok

    def unclosed(self, open_: _Token, what: str) -> LinkError:
        return self.error(self.last_line(), f"unbalanced parentheses: the '(' of {what} at "
                          f"line {open_.line} is never closed")

    # formats = "(" name [ "," name "," name ] ")"
    def formats(self, open_: _Token) -> None:
        names = []
        while True:
            tok = self.next()
            if tok is None:
                raise self.unclosed(open_, "OUTPUT_FORMAT")
            if tok.text == ")" and not tok.quoted:
                break
            if tok.text == "," and not tok.quoted:
                continue
            if tok.text in ("(", ";") and not tok.quoted:
                raise self.error(tok.line, f"unexpected {tok.text!r} in OUTPUT_FORMAT")
            names.append(tok.text)
        if len(names) not in (1, 3):
            raise self.error(open_.line, "OUTPUT_FORMAT takes one format or three "
                             f"(default, big-endian, little-endian), not {len(names)}")
        if self.output_format is None:
            self.output_format = names[0]

    # list = { name | "-l" NAME | "AS_NEEDED" "(" list ")" } separated by blanks or ","
    def list(self, open_: _Token, group: int | None, as_needed: bool) -> None:
        owner = "AS_NEEDED" if as_needed else "GROUP" if group is not None else "INPUT"
        while True:
            tok = self.next()
            if tok is None:
                raise self.unclosed(open_, owner)
            if not tok.quoted:
                if tok.text == ")":
                    return
                if tok.text == ",":
                    continue
                if tok.text == "AS_NEEDED":
                    self.list(self.open(tok), group, as_needed=True)
                    continue
                if tok.text in ("(", ";"):
                    raise self.error(tok.line, f"unexpected {tok.text!r} in {owner}")
                if tok.text in COMMANDS:
                    raise self.error(tok.line, f"{tok.text} inside {owner}")
                if tok.text.startswith("-l"):
                    if tok.text == "-l":
                        raise self.error(tok.line, "-l without a library name")
                    self.inputs.append(ScriptInput(tok.text[2:], True, as_needed, group,
                                                   tok.line))
                    continue
            if not tok.text:
                raise self.error(tok.line, "an empty file name")
            self.inputs.append(ScriptInput(tok.text, False, as_needed, group, tok.line))


def parse_script(text: str | bytes, path: str,
                 output_format: str | None = None) -> LinkerScript:
    """The inputs a GNU ld input script names, in order. With `output_format` (a BFD target
    name such as "elf64-x86-64"), a script whose OUTPUT_FORMAT names another is an error."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            line = text.count(b"\n", 0, e.start) + 1
            raise LinkError(f"{path}:{line}: a linker script that is not UTF-8 text") from None
    parser = _Parser(_tokens(text, path), path)
    parser.script()
    script = LinkerScript(path, parser.inputs, parser.output_format)
    if output_format is not None and script.output_format not in (None, output_format):
        line = next(t.line for t in parser.tokens if t.text == "OUTPUT_FORMAT")
        raise LinkError(f"{path}:{line}: is for {script.output_format}; this link is for "
                        f"{output_format}")
    return script
