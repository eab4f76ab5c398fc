"""The runtime's promises that output alone cannot show, checked with strace: one `write` per
print, no libc, nothing but system calls."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import build_text, require, run

PROGRAM = """
fn main() {
    print("a", 1, true, "b", -9223372036854775808);
    eprint("to stderr", false);
    let i = 0;
    while i < 3 {
        print(i);
        i += 1;
    }
    print();
    print(BIG);
}
"""


def test_each_print_is_one_write(tmp_path: Path):
    strace = require("strace")
    big = "x" * 200_000
    built, exe = build_text(tmp_path, f'const BIG: str = "{big}";\n' + PROGRAM)
    assert built.status == 0, built.stderr
    log = tmp_path / "trace"
    result = run([strace, "-f", "-e", "trace=write,writev", "-e", "abbrev=none", "-s", "0",
                  "-o", str(log), str(exe)])
    assert result.status == 0, result.stderr
    assert result.stdout == f"a 1 true b -9223372036854775808\n0\n1\n2\n\n{big}\n"
    writes = [line for line in log.read_text().splitlines() if re.search(r"\bwrite\(", line)]
    fds = [int(re.search(r"write\((\d+)", w).group(1)) for w in writes]
    assert fds == [1, 2, 1, 1, 1, 1, 1], log.read_text()
    assert not any("writev" in line for line in log.read_text().splitlines())


def test_no_system_calls_but_the_runtimes(tmp_path: Path):
    strace = require("strace")
    built, exe = build_text(tmp_path, 'fn main() { print("hi"); sleep_ms(1); exit(3); }\n')
    assert built.status == 0, built.stderr
    log = tmp_path / "trace"
    result = run([strace, "-f", "-o", str(log), str(exe)])
    assert result.status == 3 and result.stdout == "hi\n"
    calls = {m.group(1) for line in log.read_text().splitlines()
             if (m := re.match(r"(?:\d+\s+)?(\w+)\(", line))}
    # execve is strace starting the program; the rest is what the program itself asked for.
    assert calls <= {"execve", "mmap", "write", "nanosleep", "exit_group"}, calls
