"""The runtime helpers (lazy symbols) on AArch64 Linux, written in assembly, no libc.

Each helper is generated the first time a relocation refers to it. They talk to the kernel
with raw system calls (number in x8, arguments in x0-x5, `svc #0`, the result or -errno in x0,
every other register kept) and follow AAPCS64: arguments in x0-x7, the result in x0, x0-x17
free to clobber, x19-x28, x29 (frame pointer) and sp kept, x18 never touched.

- `_start`: saves argc and builds `str` copies of argv (`toy.rt.args_init`, x0 = the initial
  sp), calls `main`, exits with its status.
- `toy.rt.print(fd=x0, values=x1, count=x2, kinds=x3)`: formats `count` values (value i at
  `[x1 + 8*i]`, in natural order unlike x86_64's; kind i the byte `kinds[i]`: i, b or s, in upper
  case without the separating space) separated by spaces, ending in a newline, into one buffer
  (on the stack up to STACK_BUFFER_MAX bytes, else mmapped), and writes it with one `write`
  (repeated only on short writes).
- `toy.rt.panic(msg=x0, file=x1, line=x2, col=x3)`: `panic: MSG at FILE:LINE:COL` on stderr,
  exit status 101; `line` is a line field (`toyc.code`), turned into today's line with the line
  shift table `toy.rt.line_shifts` (data the linker maintains; empty after a full build).
- `toy.rt.spawn(f=x0, arg=x1)` -> x0: starts a kernel thread (clone) running `f(arg)` on a stack
  of its own, an 8 MiB mapping with a guard page at its low end and the thread's control block
  at its top, and returns the handle: the control block's address. The block holds, at byte
  offsets, 0 `f`, 8 `arg`, 16 the result, 24 the thread id word (u32, set by the kernel at
  clone and cleared when the thread ends), 32 the mapping's base and 40 its size. Prints a
  panic line and exits with status 101 when the stack cannot be mapped or the thread cannot be
  created. AArch64's clone takes (flags, newsp, parent_tid, tls, child_tid), tls before
  child_tid, unlike x86_64's.
- `toy.rt.thread_start(block=x0)`: where a new thread begins: calls `f(arg)`, stores the result
  in the block and ends the thread alone (SYS_exit; `exit` and panics end the process).
- `toy.rt.join(handle=x0)` -> x0: waits (futex) until the thread has ended, unmaps its mapping
  and returns its result. Joining a handle twice, or a value that is no handle, is undefined.
- `_start.tls` (named `_start` in the output): `_start` for a program with thread-locals; it
  calls `toy.rt.tls_init`, which maps the main thread's TCB and TLS block (variant 1: TPIDR_EL0
  points at a 16-byte thread control block, the TLS block follows it), copies the TLS image
  into it and sets TPIDR_EL0. `spawn` sets up each thread's TCB and block the same way, below
  its control block, when `toy.rt.tls_info` (which the linker writes: image address, image
  size, block size) says there is one.
- `toy.rt.streq(a=x0, b=x1)` -> x0 (1 if equal); `toy.rt.argv(i=x0)` and
  `toy.rt.parse_int(s=x0)` -> x0 the value, x1 0, or x1 1 when out of bounds or no integer;
  `toy.rt.sleep_ms(ms=x0)`; `toy.rt.clock_ns()` -> x0; the internal `toy.rt.fmt_int(dest=x0,
  value=x1)` -> x0 the end, `toy.rt.write_all(fd=x0, buf=x1, len=x2)`; and the data
  `toy.rt.argc`, `toy.rt.args`.

`_start` and `toy.rt.thread_start`, where the main thread's and a spawned thread's code begin,
have call frame information (`toyc.cfi`) that leaves the return address (x30) undefined, as
glibc's `_start` and `clone` do: a debugger's backtrace ends at them instead of unwinding into
the kernel's initial stack or the thread's control block (x29 = 0 alone does not stop gdb).
The other helpers have none.
"""

from __future__ import annotations

from toyc import cfi
from toyc.code import LINE_SHIFTS, START_TLS, TLS_INFO, Code, LazySymbol, Target

from .assembler import Asm

SYS_WRITE, SYS_MMAP, SYS_MPROTECT, SYS_MUNMAP, SYS_NANOSLEEP = 64, 222, 226, 215, 101
SYS_CLONE, SYS_EXIT, SYS_FUTEX, SYS_CLOCK_GETTIME, SYS_EXIT_GROUP = 220, 93, 98, 113, 94
CLONE_SETTLS = 0x80000
# toy.rt.tls_info, which the linker keeps: the TLS image's address, its size in the file, and
# the size of a thread's TLS block (what follows the TCB); all zero without TLS
TLS_IMAGE, TLS_FILESZ, TLS_BLOCK = 0, 8, 16
TCB_SIZE = 16  # what TPIDR_EL0 points at; the TLS block follows it
EINTR = 4
PROT_NONE, PROT_READ_WRITE = 0, 3
MAP_PRIVATE, MAP_ANONYMOUS, MAP_NORESERVE, MAP_STACK = 0x02, 0x20, 0x4000, 0x20000
FUTEX_WAIT = 0  # not FUTEX_PRIVATE_FLAG: the kernel's wake on thread exit is a shared one
CLONE_THREAD_FLAGS = (0x100 | 0x200 | 0x400 | 0x800  # VM, FS, FILES, SIGHAND
                      | 0x10000 | 0x40000  # THREAD, SYSVSEM
                      | 0x100000 | 0x200000)  # PARENT_SETTID, CHILD_CLEARTID
PAGE_SIZE = 4096

# A thread's mapping: a guard page at its low end, the stack above it, and the control block
# at its top, where the stack starts (growing down, away from it). Like the main thread's
# usual limit, so that programs that run in main also run in a thread; MAP_NORESERVE because
# only the pages a thread touches are ever used.
THREAD_MAPPING_SIZE = 8 << 20
# The control block; its address is the thread's handle.
TB_FN, TB_ARG, TB_RESULT, TB_TID, TB_BASE, TB_SIZE = 0, 8, 16, 24, 32, 40
THREAD_BLOCK_SIZE = 64  # a multiple of 16, so the stack below it starts aligned
STACK_BUFFER_MAX = 16384  # print buffers up to this size live on the stack, larger ones are mmapped

DWARF_X19, DWARF_FP, DWARF_LR = 19, 29, 30  # x30 is the return address column

NOMEM, NOTHREAD = b"panic: out of memory\n", b"panic: cannot start a thread\n"


def _mov(reg: str, value: int) -> list[str]:
    """`reg` = `value` (unsigned, below 2**32) as movz/movk, which keystone encodes as written."""
    low, high = value & 0xFFFF, value >> 16
    if not low and high:
        return [f"movz {reg}, #{high:#x}, lsl #16"]
    return [f"movz {reg}, #{low:#x}"] + ([f"movk {reg}, #{high:#x}, lsl #16"] if high else [])


class _Helper(Asm):
    def outermost(self) -> None:
        """From here on this frame has no caller (`toyc.cfi`): where a thread's code begins."""
        self.cfi_label(cfi.undefined(DWARF_LR))

    def rt_call(self, name: str) -> None:
        self.call(Target("lazy", name))

    def rt_address(self, reg: str, name: str) -> None:
        """`reg` = the address of runtime data `name`."""
        self.address(reg, Target("lazy", name))

    def str_address(self, reg: str, value: bytes) -> None:
        """`reg` = a str constant holding `value` (its first byte)."""
        self.address(reg, Target("uav", value))

    def syscall(self, number: int) -> None:
        self(f"mov x8, #{number}", "svc #0")

    def exit_group(self, status: int) -> None:
        self(f"mov x0, #{status}")
        self.syscall(SYS_EXIT_GROUP)
        self("brk #0")

    def mmap(self, size: str, flags: int = MAP_PRIVATE | MAP_ANONYMOUS) -> None:
        """x0 = a fresh read-write mapping of `size` (a register) bytes, or -errno."""
        if size != "x1":
            self(f"mov x1, {size}")
        self("mov x0, #0", f"mov x2, #{PROT_READ_WRITE}", *_mov("x3", flags), "mov x4, #-1",
             "mov x5, #0")
        self.syscall(SYS_MMAP)

    def copy_bytes(self, dst: str, src: str, count: str, tmp: str) -> None:
        """Copies `count` bytes from `src` to `dst`, advancing all three registers."""
        n = len(self.lines)
        self(f".Lcopy{n}:", f"cbz {count}, .Lcopied{n}", f"ldrb {tmp}, [{src}], #1",
             f"strb {tmp}, [{dst}], #1", f"sub {count}, {count}, #1", f"b .Lcopy{n}",
             f".Lcopied{n}:")


def _start(a: _Helper, tls: bool = False) -> None:
    # x29 = x30 = 0 ends backtraces (with the call frame information); the kernel leaves sp
    # aligned, the `and` makes sure.
    a.outermost()
    a("mov x29, #0", "mov x30, #0", "mov x0, sp", "and x9, x0, #-16", "mov sp, x9")
    a.rt_call("toy.rt.args_init")
    if tls:
        a.rt_call("toy.rt.tls_init")
    a.call(Target("nav", "main"))
    a("and x0, x0, #255")
    a.syscall(SYS_EXIT_GROUP)
    a("brk #0")


def _args_init(a: _Helper) -> None:
    # x0 points at argc, then argv[0..argc), as the kernel lays out the initial stack. Copies
    # every argument into one mmapped block as a Toy str (length, bytes, NUL), and a table of
    # pointers to them in front of the block. System calls keep every register but x0.
    a("ldr x9, [x0]")
    a.rt_address("x10", "toy.rt.argc")
    a("str x9, [x10]", "add x11, x0, #8", "lsl x12, x9, #3", "mov x13, #0")
    a(".Lsize:", "cmp x13, x9", "b.hs .Lsized", "ldr x14, [x11, x13, lsl #3]", "mov x15, #0",
      ".Lstrlen:", "ldrb w16, [x14, x15]", "cbz w16, .Llen", "add x15, x15, #1", "b .Lstrlen",
      ".Llen:", "add x15, x15, #16", "and x15, x15, #-8", "add x12, x12, x15",
      "add x13, x13, #1", "b .Lsize")
    a(".Lsized:")
    a.mmap("x12")
    a("cmn x0, #4096", "b.hi .Lnomem")
    a.rt_address("x10", "toy.rt.args")
    a("str x0, [x10]", "add x12, x0, x9, lsl #3", "mov x13, #0")
    a(".Lcopy:", "cmp x13, x9", "b.hs .Ldone", "ldr x14, [x11, x13, lsl #3]", "add x15, x12, #8",
      "str x15, [x0, x13, lsl #3]", "mov x16, #0",
      ".Lbyte:", "ldrb w17, [x14, x16]", "strb w17, [x15, x16]", "cbz w17, .Lcopied",
      "add x16, x16, #1", "b .Lbyte",
      ".Lcopied:", "str x16, [x12]", "add x17, x16, #16", "and x17, x17, #-8",
      "add x12, x12, x17", "add x13, x13, #1", "b .Lcopy",
      ".Ldone:", "ret")
    a(".Lnomem:")
    a.exit_group(127)


def _write_all(a: _Helper) -> None:
    # write(x0, x1, x2) until everything is written; gives up on an error other than EINTR.
    a("mov x9, x0",
      ".Lagain:", "cmp x2, #0", "b.le .Ldone", "mov x0, x9")
    a.syscall(SYS_WRITE)
    a(f"cmn x0, #{EINTR}", "b.eq .Lagain", "cmp x0, #0", "b.le .Ldone",
      "add x1, x1, x0", "sub x2, x2, x0", "b .Lagain", ".Ldone:", "ret")


def _fmt_int(a: _Helper) -> None:
    # Writes the decimal digits of x1 at x0; returns the end in x0. Counts the digits first so
    # that they can be written in place, last digit first, with no scratch space. The magnitude
    # is unsigned, so INT_MIN's is right.
    a("mov x9, x1", "cmp x1, #0", "b.ge .Lpos", "mov w10, #45", "strb w10, [x0], #1",
      "neg x9, x1",
      ".Lpos:", "mov x10, x9", "mov x11, #10", "mov x12, x0",
      ".Lcount:", "add x12, x12, #1", "udiv x10, x10, x11", "cbnz x10, .Lcount",
      "mov x0, x12",
      ".Ldigit:", "udiv x10, x9, x11", "msub x13, x10, x11, x9", "add w13, w13, #48",
      "strb w13, [x12, #-1]!", "mov x9, x10", "cbnz x9, .Ldigit", "ret")


def _print(a: _Helper) -> None:
    # x19 fd, x20 values, x21 count, x22 kinds, x23 buffer size, x24 buffer, x25 value index
    a("stp x29, x30, [sp, #-80]!", "mov x29, sp", "stp x19, x20, [sp, #16]",
      "stp x21, x22, [sp, #32]", "stp x23, x24, [sp, #48]", "str x25, [sp, #64]",
      "mov x19, x0", "mov x20, x1", "mov x21, x2", "mov x22, x3")
    # Size: one separator or newline per value (at least the newline), plus the values; 20
    # bytes hold any int ("-9223372036854775808") or bool.
    a("mov x23, x21", "cbnz x21, .Lsize0", "mov x23, #1", ".Lsize0:", "mov x9, #0",
      ".Lsize:", "cmp x9, x21", "b.hs .Lsized", "ldr x10, [x20, x9, lsl #3]",
      "ldrb w11, [x22, x9]", "orr w11, w11, #32", "cmp w11, #115", "b.ne .Lsmall",
      "ldur x10, [x10, #-8]", "add x23, x23, x10", "b .Lsizenext",
      ".Lsmall:", "add x23, x23, #20",
      ".Lsizenext:", "add x9, x9, #1", "b .Lsize")
    a(".Lsized:", *_mov("x9", STACK_BUFFER_MAX), "cmp x23, x9", "b.hi .Lmmap",
      "add x9, x23, #15", "and x9, x9, #-16", "sub sp, sp, x9", "mov x24, sp", "b .Lfill",
      ".Lmmap:")
    a.mmap("x23")
    a("cmn x0, #4096", "b.hi .Lnomem", "mov x24, x0")
    # x0 is where the next byte goes, in and out of fmt_int.
    a(".Lfill:", "mov x0, x24", "mov x25, #0",
      ".Lvalue:", "cmp x25, x21", "b.hs .Lfilled", "ldrb w9, [x22, x25]",
      "cbz x25, .Lnosep", "tbz w9, #5, .Lnosep", "mov w10, #32", "strb w10, [x0], #1",
      ".Lnosep:", "orr w9, w9, #32", "ldr x1, [x20, x25, lsl #3]", "cmp w9, #115", "b.eq .Lstr",
      "cmp w9, #98", "b.eq .Lbool")
    a.rt_call("toy.rt.fmt_int")
    # A bool is one byte: only the low one counts.
    a("b .Lnext",
      ".Lbool:", "tst w1, #0xff", "b.eq .Lfalse", *_mov("w10", int.from_bytes(b"true", "little")),
      "str w10, [x0], #4", "b .Lnext",
      ".Lfalse:", *_mov("w10", int.from_bytes(b"fals", "little")), "str w10, [x0], #4",
      "mov w10, #101", "strb w10, [x0], #1", "b .Lnext",
      ".Lstr:", "ldur x10, [x1, #-8]")
    a.copy_bytes("x0", "x1", "x10", "w11")
    a(".Lnext:", "add x25, x25, #1", "b .Lvalue")
    a(".Lfilled:", "mov w10, #10", "strb w10, [x0], #1", "sub x2, x0, x24", "mov x1, x24",
      "mov x0, x19")
    a.rt_call("toy.rt.write_all")
    a(*_mov("x9", STACK_BUFFER_MAX), "cmp x23, x9", "b.ls .Lreturn", "mov x0, x24",
      "mov x1, x23")
    a.syscall(SYS_MUNMAP)
    a(".Lreturn:", "mov sp, x29", "ldr x25, [sp, #64]", "ldp x23, x24, [sp, #48]",
      "ldp x21, x22, [sp, #32]", "ldp x19, x20, [sp, #16]", "ldp x29, x30, [sp], #80", "ret")
    a(".Lnomem:", "mov x0, #2")
    a.str_address("x1", NOMEM)
    a(f"mov x2, #{len(NOMEM)}")
    a.rt_call("toy.rt.write_all")
    a.exit_group(101)


def _panic(a: _Helper) -> None:
    # Upper-case kinds print without the separating space: "FILE:LINE:COL" is one word.
    a("stp x29, x30, [sp, #-16]!", "mov x29, sp")
    # Replay the line shifts recorded since the line field was written (its high half); entry
    # k is at 4 + 8*k.
    a("lsr x9, x2, #32", "mov w2, w2")
    a.rt_address("x10", LINE_SHIFTS)
    a("ldr w11, [x10]",
      ".Lshift:", "cmp x9, x11", "b.hs .Lshifted", "add x12, x10, x9, lsl #3",
      "ldr w13, [x12, #4]", "cmp w2, w13", "b.lo .Lnext", "ldr w13, [x12, #8]",
      "add w2, w2, w13", ".Lnext:", "add x9, x9, #1", "b .Lshift",
      ".Lshifted:", "sub sp, sp, #64")
    a.str_address("x9", b"panic:")
    a("stp x9, x0, [sp]")
    a.str_address("x9", b"at")
    a("stp x9, x1, [sp, #16]")
    a.str_address("x9", b":")
    a("stp x9, x2, [sp, #32]", "stp x9, x3, [sp, #48]", "mov x0, #2", "mov x1, sp", "mov x2, #8")
    a.str_address("x3", b"ssssSISI")
    a.rt_call("toy.rt.print")
    a.exit_group(101)


def _tls_init(a: _Helper) -> None:
    # The main thread's TCB and TLS block (AArch64 variant I): a fresh mapping, its first 16
    # bytes the TCB (left zero), the image copied after it (the rest, .tbss, is already zero),
    # and TPIDR_EL0 pointing at the TCB, which user code may set itself.
    a.rt_address("x9", TLS_INFO)
    a(f"ldr x1, [x9, #{TLS_BLOCK}]", f"add x1, x1, #{TCB_SIZE}")
    a.mmap("x1")
    a("cmn x0, #4096", "b.hi .Lnomem", f"ldr x10, [x9, #{TLS_IMAGE}]",
      f"ldr x11, [x9, #{TLS_FILESZ}]", f"add x12, x0, #{TCB_SIZE}")
    a.copy_bytes("x12", "x10", "x11", "w13")
    a("msr tpidr_el0, x0", "ret")
    a(".Lnomem:")
    a.exit_group(127)


def _spawn(a: _Helper) -> None:
    # x19 the mapping, x20 f, x21 arg, x22 the control block: callee-saved, so that the new
    # thread, which starts with the parent's registers (but x0) on a stack of its own, has them.
    a("stp x29, x30, [sp, #-48]!", "mov x29, sp", "stp x19, x20, [sp, #16]",
      "stp x21, x22, [sp, #32]", "mov x20, x0", "mov x21, x1")
    a(*_mov("x1", THREAD_MAPPING_SIZE))
    a.mmap("x1", MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK)
    a("cmn x0, #4096", "b.hi .Lnomem", "mov x19, x0")
    # A stack overflow then faults at once instead of writing over whatever is mapped below.
    a(*_mov("x1", PAGE_SIZE), f"mov x2, #{PROT_NONE}")
    a.syscall(SYS_MPROTECT)
    a("cbnz x0, .Lnomem")
    # The new thread's stack pointer is the block itself (a fresh mapping is already zero).
    a(*_mov("x9", THREAD_MAPPING_SIZE), "add x22, x19, x9",
      f"sub x22, x22, #{THREAD_BLOCK_SIZE}", f"stp x20, x21, [x22, #{TB_FN}]",
      f"str x19, [x22, #{TB_BASE}]", f"str x9, [x22, #{TB_SIZE}]")
    # clone(flags, stack, parent_tid, tls, child_tid): the kernel writes the thread id into the
    # block's tid word before clone returns, and clears it (and wakes futex waiters on it) when
    # the thread ends, which is what join waits for. The tls argument (x3) is the thread's TCB,
    # with CLONE_SETTLS; there is none yet.
    a(*_mov("x0", CLONE_THREAD_FLAGS), "mov x1, x22", "mov x3, #0")
    # With thread-locals, the thread's TLS block goes right below its control block, its TCB
    # below that (16-byte aligned, as the block's size is a multiple of 16) and its stack below
    # the TCB.
    a.rt_address("x9", TLS_INFO)
    a(f"ldr x10, [x9, #{TLS_BLOCK}]", "cbz x10, .Lclone", "sub x3, x22, x10",
      f"sub x3, x3, #{TCB_SIZE}", f"ldr x11, [x9, #{TLS_IMAGE}]",
      f"ldr x12, [x9, #{TLS_FILESZ}]", f"add x13, x3, #{TCB_SIZE}")
    a.copy_bytes("x13", "x11", "x12", "w14")
    a(*_mov("x10", CLONE_SETTLS), "orr x0, x0, x10", "mov x1, x3")
    a(".Lclone:", f"add x2, x22, #{TB_TID}", "mov x4, x2")
    a.syscall(SYS_CLONE)
    a("cbz x0, .Lchild", "tbnz x0, #63, .Lnothread", "mov x0, x22",
      "ldp x21, x22, [sp, #32]", "ldp x19, x20, [sp, #16]", "ldp x29, x30, [sp], #48", "ret")
    # The new thread resumes here, with sp at its control block (or its TCB) and so nothing of
    # the parent's frame to pop; x29 = 0 ends backtraces.
    a(".Lchild:", "mov x29, #0", "mov x0, x22")
    a.rt_call("toy.rt.thread_start")
    a("brk #0")
    a(".Lnomem:")
    a.str_address("x1", NOMEM)
    a(f"mov x2, #{len(NOMEM)}", "b .Ldie", ".Lnothread:")
    a.str_address("x1", NOTHREAD)
    a(f"mov x2, #{len(NOTHREAD)}", ".Ldie:", "mov x0, #2")
    a.rt_call("toy.rt.write_all")
    a.exit_group(101)


def _thread_start(a: _Helper) -> None:
    # Called (never returning) with the control block in x0 and sp at or below it. The barrier
    # orders the result's store before the kernel's clearing of the tid word, which join reads
    # with acquire semantics before the result.
    # Its frame is the outermost: the return address it saves (spawn's child path, which
    # returns nowhere) stays undefined; where the frame is and x29 and x19 are is said all
    # the same.
    a.outermost()
    a("stp x29, x30, [sp, #-32]!")
    a.cfi_label(cfi.def_cfa_offset(32) + cfi.offset(DWARF_FP, 4))
    a("mov x29, sp")
    a.cfi_label(cfi.def_cfa_register(DWARF_FP))
    a("str x19, [sp, #16]")
    a.cfi_label(cfi.offset(DWARF_X19, 2))
    a("mov x19, x0", f"ldr x9, [x19, #{TB_FN}]", f"ldr x0, [x19, #{TB_ARG}]", "blr x9",
      f"str x0, [x19, #{TB_RESULT}]", "dmb ish", "mov x0, #0")
    a.syscall(SYS_EXIT)
    a("brk #0")


def _join(a: _Helper) -> None:
    # The tid word is non-zero from spawn's return until the kernel clears it as the thread
    # ends. FUTEX_WAIT returns at once (EAGAIN) if the word already changed, or early on a
    # signal (EINTR); either way the loop looks at the word again. Joining a handle twice is
    # undefined: the first join unmapped the block.
    a("mov x9, x0", f"add x10, x9, #{TB_TID}",
      ".Lwait:", "ldar w2, [x10]", "cbz w2, .Lended", "mov x0, x10", f"mov x1, #{FUTEX_WAIT}",
      "mov x3, #0")
    a.syscall(SYS_FUTEX)
    a("b .Lwait")
    # The thread's stack is no longer in use once the word is cleared: unmap it, and with it
    # the block, so read the result first.
    a(".Lended:", f"ldr x11, [x9, #{TB_RESULT}]", f"ldr x0, [x9, #{TB_BASE}]",
      f"ldr x1, [x9, #{TB_SIZE}]")
    a.syscall(SYS_MUNMAP)
    a("mov x0, x11", "ret")


def _streq(a: _Helper) -> None:
    # Equal lengths, then 8 bytes at a time (unaligned loads are fine), then the rest.
    a("ldur x9, [x0, #-8]", "ldur x10, [x1, #-8]", "cmp x9, x10", "b.ne .Lne",
      ".Lwords:", "cmp x9, #8", "b.lo .Lbytes", "ldr x10, [x0], #8", "ldr x11, [x1], #8",
      "cmp x10, x11", "b.ne .Lne", "sub x9, x9, #8", "b .Lwords",
      ".Lbytes:", "cbz x9, .Leq", "ldrb w10, [x0], #1", "ldrb w11, [x1], #1", "cmp w10, w11",
      "b.ne .Lne", "sub x9, x9, #1", "b .Lbytes",
      ".Leq:", "mov x0, #1", "ret", ".Lne:", "mov x0, #0", "ret")


def _argv(a: _Helper) -> None:
    # Returns the argument in x0 and 0 in x1, or 1 in x1 when the index is out of bounds
    # (unsigned, so negative ones are too): the caller panics, so that the panic names the
    # caller's line.
    a("mov x1, #1")
    a.rt_address("x9", "toy.rt.argc")
    a("ldr x9, [x9]", "cmp x0, x9", "b.hs .Loob")
    a.rt_address("x9", "toy.rt.args")
    a("ldr x9, [x9]", "ldr x0, [x9, x0, lsl #3]", "mov x1, #0", ".Loob:", "ret")


def _parse_int(a: _Helper) -> None:
    # Returns the value in x0 and 0 in x1, or 1 in x1 for a bad integer (as toy.rt.argv).
    # Accumulates the negated value so that INT_MIN parses; the product's high half (smulh)
    # and the V flag catch overflow.
    a("ldur x9, [x0, #-8]", "mov x10, #0", "mov x11, #0", "mov x12, #0", "mov x14, #10",
      "cbz x9, .Lbad", "ldrb w13, [x0]", "cmp w13, #45", "b.ne .Ldigit", "mov x12, #1",
      "add x11, x11, #1", "cmp x11, x9", "b.eq .Lbad",
      ".Ldigit:", "cmp x11, x9", "b.hs .Lend", "ldrb w13, [x0, x11]", "sub w13, w13, #48",
      "cmp w13, #9", "b.hi .Lbad", "mul x15, x10, x14", "smulh x16, x10, x14",
      "cmp x16, x15, asr #63", "b.ne .Lbad", "subs x10, x15, x13", "b.vs .Lbad",
      "add x11, x11, #1", "b .Ldigit",
      ".Lend:", "cbnz x12, .Lneg", "negs x10, x10", "b.vs .Lbad",
      ".Lneg:", "mov x0, x10", "mov x1, #0", "ret", ".Lbad:", "mov x1, #1", "ret")


def _sleep_ms(a: _Helper) -> None:
    # nanosleep writes the time left into the same timespec when a signal cuts it short.
    a("cmp x0, #0", "b.le .Lreturn", "sub sp, sp, #16", "mov x9, #1000", "udiv x10, x0, x9",
      "msub x11, x10, x9, x0", *_mov("x12", 1000000), "mul x11, x11, x12",
      "stp x10, x11, [sp]",
      ".Lagain:", "mov x0, sp", "mov x1, sp")
    a.syscall(SYS_NANOSLEEP)
    a(f"cmn x0, #{EINTR}", "b.eq .Lagain", "add sp, sp, #16", ".Lreturn:", "ret")


def _clock_ns(a: _Helper) -> None:
    a("sub sp, sp, #16", "mov x0, #1", "mov x1, sp")  # CLOCK_MONOTONIC
    a.syscall(SYS_CLOCK_GETTIME)
    a("ldp x9, x10, [sp]", *_mov("x11", 1000000000), "madd x0, x9, x11, x10",
      "add sp, sp, #16", "ret")


_CODE = {
    "_start": _start,
    "toy.rt.args_init": _args_init,
    "toy.rt.write_all": _write_all,
    "toy.rt.fmt_int": _fmt_int,
    "toy.rt.print": _print,
    "toy.rt.panic": _panic,
    "toy.rt.streq": _streq,
    "toy.rt.argv": _argv,
    "toy.rt.parse_int": _parse_int,
    "toy.rt.sleep_ms": _sleep_ms,
    "toy.rt.clock_ns": _clock_ns,
    "toy.rt.spawn": _spawn,
    "toy.rt.tls_init": _tls_init,
    "toy.rt.thread_start": _thread_start,
    "toy.rt.join": _join,
}
_DATA = {"toy.rt.argc": 8, "toy.rt.args": 8}


def lower_lazy_symbol(name: str) -> LazySymbol | None:
    if name == LINE_SHIFTS:  # no shifts yet; the linker appends them
        return LazySymbol(Code(bytes(4), [], 4), "rodata", kind="object", listed=False)
    if name == TLS_INFO:  # the linker writes what it holds
        return LazySymbol(Code(bytes(24), [], 8), "rodata", kind="object")
    if name == START_TLS:  # _start for a program with thread-locals
        a = _Helper()
        _start(a, tls=True)
        return LazySymbol(a.assemble(16), "text", binding="global")
    if name in _DATA:
        return LazySymbol(Code(b"", [], 8, size=_DATA[name]), "bss", kind="object")
    gen = _CODE.get(name)
    if gen is None:
        return None
    a = _Helper()
    gen(a)
    return LazySymbol(a.assemble(16), "text", binding="global" if name == "_start" else "local")
