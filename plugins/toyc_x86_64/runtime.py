"""The runtime helpers (lazy symbols) on x86_64 Linux, written in assembly, no libc.

Each helper is generated the first time a relocation refers to it. They talk to the kernel
with raw system calls and follow the System V ABI (callee-saved rbx, rbp, r12-r15).

- `_start`: saves argc and builds `str` copies of argv, calls `main`, exits with its status.
- `toy.rt.print(fd, values, count, kinds)`: formats `count` values (value i at
  `values[count-1-i]`, kind i the byte `kinds[i]`: i, b or s) separated by spaces, ending in a
  newline, into one buffer, and writes it with one `write` (repeated only on short writes).
- `toy.rt.panic(msg, file, line, col)`: `panic: MSG at FILE:LINE:COL` on stderr, exit
  status 101; `line` is a line field (`toyc.code`), turned into today's line with the line
  shift table `toy.rt.line_shifts` (data the linker maintains; empty after a full build).
- `toy.rt.spawn(f, arg)`: starts a kernel thread (clone) running `f(arg)` on a stack of its
  own, an 8 MiB mapping with a guard page at its low end and the thread's control block at its
  top, and returns the handle: the control block's address. The block holds, at byte offsets,
  0 `f`, 8 `arg`, 16 the result, 24 the thread id word (u32, set by the kernel at clone and
  cleared when the thread ends), 32 the mapping's base and 40 its size. Prints a panic line
  and exits with status 101 when the stack cannot be mapped or the thread cannot be created.
- `toy.rt.thread_start(block)`: where a new thread begins: calls `f(arg)`, stores the result
  in the block and ends the thread alone (SYS_exit; `exit` and panics end the process).
- `toy.rt.join(handle)`: waits (futex) until the thread has ended, unmaps its mapping and
  returns its result. Joining a handle twice, or a value that is no handle, is undefined.
- `_start.tls` (named `_start` in the output): `_start` for a program with thread-locals; it
  calls `toy.rt.tls_init`, which maps the main thread's TLS block, copies the TLS image into
  it and points %fs at the thread pointer after it (which points at itself). `spawn` sets up
  each thread's block the same way, below its control block, when `toy.rt.tls_info` (which
  the linker writes: image address, image size, block size) says there is one.
- `toy.rt.streq`, `toy.rt.argv`, `toy.rt.parse_int`, `toy.rt.sleep_ms`, `toy.rt.clock_ns`,
  `toy.rt.fmt_int`, `toy.rt.write_all`, and the data `toy.rt.argc`, `toy.rt.args`.

In a relocatable object (`toyc build -c`) the linker takes the object variants
(`toyc.code.OBJECT_SUFFIX`) of four helpers. An object may be linked by gcc into a program with a
C library, whose threads and exit handling must be used (a raw clone gets no TLS block of its
own: C's setup of the executable's PT_TLS, which holds the object's thread-locals, is per
pthread; and exit_group skips C's atexit handlers and loses what stdio still buffers), or with
`-nostdlib` into one without. So each finds the C function through a weak reference (an
undefined WEAK symbol loaded from the GOT, which the system linker makes 0 when nothing defines
it) and tests it at run time:

- `toy.rt.spawn`/`toy.rt.join`: `pthread_create(&t, NULL, f, arg)` (a Toy function is a valid
  start routine: one argument in rdi, its result in rax) and `pthread_join(t, &result)`, the
  handle being the `pthread_t`, when the link has both (both helpers ask the same question, so
  that a handle always meets the join that understands it); else the raw clone above.
- `toy.rt.exit`: C's `exit(status)` (atexit handlers, destructors, stdio flushed), else
  exit_group. The object has no destructors of its own to run (`toy.rt.ctors` is empty).
- `toy.rt.panic`: the message is written as above (stderr, unbuffered), then `toy.rt.exit(101)`.

toyc's own executables keep the code above, without C library. A dynamically linked one (it
links a shared C library, `toyc build prog.toy -lc`) has the C library, started by its own
start-up code, and uses it (`toyc.code.DYNAMIC_SUFFIX` variants, calling C through `import_`
targets, which the linker turns into calls of stubs that jump through GOT slots the dynamic
loader fills):

- `_start.dynamic` (named `_start`): builds the `str` copies of argv as `_start` does, then
  hands `main` to `__libc_start_main`, which initialises the C library (stdio, `environ`, the
  constructors of the linked objects, from `.dynamic`) and calls `exit` with `main`'s result.
- `toy.rt.exit`: C's `exit`: atexit handlers, destructors, stdio flushed.
- `toy.rt.spawn`/`toy.rt.join`: `pthread_create` and `pthread_join`, so that every thread has
  its TLS block (Toy's thread-locals and C's, `errno` among them) from the C library.
- `toy.rt.print`: `fflush(NULL)` first, so that what C's stdio still buffers comes out before
  Toy's line, on a terminal and in a pipe alike; then the one `write` as above.
- `toy.rt.panic`: as in an object, the message, then `toy.rt.exit(101)`.

`_start` and `toy.rt.thread_start`, where the main thread's and a spawned thread's code begin,
have call frame information (`toyc.cfi`) that leaves the return address undefined, as glibc's
`_start` and `clone` do: a debugger's backtrace ends at them instead of unwinding into the
kernel's initial stack or the thread's control block. The other helpers have none.
"""

from __future__ import annotations

from toyc import cfi
from toyc.code import (
    CTORS_INFO,
    CTORS_SUFFIX,
    DYNAMIC_SUFFIX,
    EXIT,
    LINE_SHIFTS,
    OBJECT_SUFFIX,
    START_TLS,
    TLS_INFO,
    Code,
    LazySymbol,
    Target,
    import_,
)
from toyc.layout import STR_HEADER

from .assembler import Asm
from .codegen import DWARF_REG
from .relocs import R_X86_64_PC32, R_X86_64_PLT32, R_X86_64_REX_GOTPCRELX

SYS_WRITE, SYS_MMAP, SYS_MPROTECT, SYS_MUNMAP, SYS_NANOSLEEP = 1, 9, 10, 11, 35
SYS_CLONE, SYS_EXIT, SYS_FUTEX, SYS_CLOCK_GETTIME, SYS_EXIT_GROUP = 56, 60, 202, 228, 231
SYS_ARCH_PRCTL, ARCH_SET_FS, CLONE_SETTLS = 158, 0x1002, 0x80000
# toy.rt.tls_info, which the linker keeps: the TLS image's address, its size in the file, and
# the size of a thread's TLS block (what sits below the thread pointer); all zero without TLS
TLS_IMAGE, TLS_FILESZ, TLS_BLOCK = 0, 8, 16
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
DWARF_RIP = 16  # the return address column (ArchInfo.cfa_ra_register)


class _Helper(Asm):
    def outermost(self) -> None:
        """From here on this frame has no caller (`toyc.cfi`): where a thread's code begins."""
        self(self.cfi_label(cfi.undefined(DWARF_RIP)))

    def call(self, name: str) -> None:
        self.reloc("call 0", Target("lazy", name), R_X86_64_PLT32, -4)

    def rip(self, instr: str, name: str) -> None:
        """`instr` with a `[rip]` operand that refers to runtime data `name`."""
        self.reloc(instr, Target("lazy", name), R_X86_64_PC32, -4)

    def weak_address(self, reg: str, name: str) -> None:
        """Load the address of C's `name` into 64-bit `reg`, 0 where the final link of an
        object does not define it (a weak reference through the GOT)."""
        self.reloc(f"mov {reg}, qword ptr [rip]", Target("weak", name), R_X86_64_REX_GOTPCRELX,
                   -4)

    def call_c(self, name: str) -> None:
        """Call the C library's `name` (in a dynamically linked executable)."""
        self.reloc("call 0", import_(name), R_X86_64_PLT32, -4)

    def lea_str(self, reg: str, value: bytes) -> None:
        self.reloc(f"lea {reg}, [rip]", Target("uav", value), R_X86_64_PC32, STR_HEADER - 4)


def _start(a: _Helper, tls: bool = False, ctors: bool = False) -> None:
    a.outermost()
    a("xor ebp, ebp", "mov rdi, rsp")
    if ctors:
        a("mov rbx, rsp")  # argc, argv and envp for the constructors (args_init keeps rbx)
    a("and rsp, -16")
    a.call("toy.rt.args_init")
    if tls:
        a.call("toy.rt.tls_init")
    if ctors:  # constructors get (argc, argv, envp), as the C library passes them
        a("mov rdi, qword ptr [rbx]", "lea rsi, [rbx + 8]", "lea rdx, [rsi + rdi*8 + 8]")
        a.call("toy.rt.init")
    a.reloc("call 0", Target("nav", "main"), R_X86_64_PLT32, -4)
    a("mov edi, eax", "and edi, 255")
    if ctors:
        a.call(EXIT)
    a(f"mov eax, {SYS_EXIT_GROUP}", "syscall", "hlt")


def _start_dynamic(a: _Helper) -> None:
    # The dynamic loader has run (rdx: its destructor function, for `atexit`); the kernel's
    # initial stack is as for `_start`.
    a.outermost()
    a("xor ebp, ebp", "mov rbx, rdx", "mov r12, rsp", "mov rdi, rsp", "and rsp, -16")
    a.call("toy.rt.args_init")  # keeps rbx and r12
    # __libc_start_main(main, argc, argv, init, fini, rtld_fini, stack_end): init and fini
    # are 0, as for any program since glibc 2.34: the C library runs the constructors and
    # destructors the executable's .dynamic lists.
    a("mov r9, rbx", "mov rsi, qword ptr [r12]", "lea rdx, [r12 + 8]", "xor r8d, r8d",
      "xor ecx, ecx", "push rax", "push rsp")
    a.reloc("lea rdi, [rip]", Target("nav", "main"), R_X86_64_PC32, -4)
    a.call_c("__libc_start_main")
    a("hlt")


def _exit_dynamic(a: _Helper) -> None:
    a("and rsp, -16")
    a.call_c("exit")
    a("hlt")


def _spawn_dynamic(a: _Helper) -> None:
    # pthread_create(&handle, NULL, f, arg): a Toy function is a valid start routine (one
    # argument in rdi, its result in rax)
    fail = b"panic: cannot start a thread\n"
    a("sub rsp, 24", "mov rdx, rdi", "mov rcx, rsi", "mov rdi, rsp", "xor esi, esi")
    a.call_c("pthread_create")
    a("test eax, eax", "jne .Lfail", "mov rax, qword ptr [rsp]", "add rsp, 24", "ret",
      ".Lfail:")
    a.lea_str("rsi", fail)
    a(f"mov edx, {len(fail)}", "mov edi, 2")
    a.call("toy.rt.write_all")
    a("mov edi, 101")
    a.call(EXIT)
    a("hlt")


def _join_dynamic(a: _Helper) -> None:
    a("sub rsp, 24", "mov qword ptr [rsp], 0", "mov rsi, rsp")
    a.call_c("pthread_join")
    a("mov rax, qword ptr [rsp]", "add rsp, 24", "ret")


def _init(a: _Helper) -> None:
    # Calls each .init_array entry, first to last, with (argc, argv, envp).
    a("push rbx", "push r12", "push r13", "push r14", "push r15",
      "mov r13, rdi", "mov r14, rsi", "mov r15, rdx")
    a.rip("lea r8, [rip]", CTORS_INFO)
    a("mov rbx, qword ptr [r8]", "mov r12, qword ptr [r8 + 8]",
      ".Lnext:", "cmp rbx, r12", "jae .Ldone",
      "mov rdi, r13", "mov rsi, r14", "mov rdx, r15", "call qword ptr [rbx]", "add rbx, 8",
      "jmp .Lnext",
      ".Ldone:", "pop r15", "pop r14", "pop r13", "pop r12", "pop rbx", "ret")


def _exit(a: _Helper) -> None:
    # exit(status): each .fini_array entry, last to first, then exit_group. The stack is
    # aligned for the calls (the return address and three pushes).
    a("push rbx", "push r12", "mov r12d, edi")
    a.rip("lea r8, [rip]", CTORS_INFO)
    a("mov rbx, qword ptr [r8 + 24]", "mov rcx, qword ptr [r8 + 16]", "push rcx",
      ".Lnext:", "cmp rbx, qword ptr [rsp]", "jbe .Ldone", "sub rbx, 8",
      "call qword ptr [rbx]", "jmp .Lnext",
      ".Ldone:", "mov edi, r12d", f"mov eax, {SYS_EXIT_GROUP}", "syscall", "hlt")


def _exit_object(a: _Helper) -> None:
    # exit(status) in an object: C's exit when the link has it, which never returns.
    a.weak_address("rax", "exit")
    a("test rax, rax", "je .Lraw", "and rsp, -16", "call rax",
      ".Lraw:", f"mov eax, {SYS_EXIT_GROUP}", "syscall", "hlt")


def _args_init(a: _Helper) -> None:
    # rdi points at argc, then argv[0..argc), as the kernel lays out the initial stack. Copies
    # every argument into one mmapped block as a Toy str (length, bytes, NUL), and a table of
    # pointers to them in front of the block.
    a("mov rcx, qword ptr [rdi]")
    a.rip("mov qword ptr [rip], rcx", "toy.rt.argc")
    a("lea r8, [rdi + 8]", "lea r9, [rcx*8]", "xor r10d, r10d")
    a(".Lsize:", "cmp r10, rcx", "jae .Lsized", "mov rsi, qword ptr [r8 + r10*8]",
      "xor eax, eax",
      ".Lstrlen:", "cmp byte ptr [rsi + rax], 0", "je .Llen", "inc rax", "jmp .Lstrlen",
      ".Llen:", "add rax, 16", "and rax, -8", "add r9, rax", "inc r10", "jmp .Lsize")
    a(".Lsized:", "push rcx", "push r8",
      "xor edi, edi", "mov rsi, r9", "mov edx, 3", "mov r10d, 0x22", "mov r8, -1",
      "xor r9d, r9d", f"mov eax, {SYS_MMAP}", "syscall",
      "pop r8", "pop rcx", "cmp rax, -4096", "ja .Lnomem", "mov r9, rax")
    a.rip("mov qword ptr [rip], r9", "toy.rt.args")
    a("lea rdx, [r9 + rcx*8]", "xor r10d, r10d")
    a(".Lcopy:", "cmp r10, rcx", "jae .Ldone", "mov rsi, qword ptr [r8 + r10*8]",
      "lea rdi, [rdx + 8]", "mov qword ptr [r9 + r10*8], rdi", "xor r11d, r11d",
      ".Lbyte:", "mov al, byte ptr [rsi + r11]", "mov byte ptr [rdi + r11], al", "test al, al",
      "je .Lcopied", "inc r11", "jmp .Lbyte",
      ".Lcopied:", "mov qword ptr [rdx], r11", "lea rax, [r11 + 16]", "and rax, -8",
      "add rdx, rax", "inc r10", "jmp .Lcopy",
      ".Ldone:", "ret")
    a(".Lnomem:", "mov edi, 127", f"mov eax, {SYS_EXIT_GROUP}", "syscall", "hlt")


def _write_all(a: _Helper) -> None:
    # write(rdi, rsi, rdx) until everything is written; gives up on an error other than EINTR.
    a(".Lagain:", "test rdx, rdx", "jle .Ldone", f"mov eax, {SYS_WRITE}", "syscall",
      f"cmp rax, -{EINTR}", "je .Lagain", "test rax, rax", "jle .Ldone",
      "add rsi, rax", "sub rdx, rax", "jmp .Lagain", ".Ldone:", "ret")


def _fmt_int(a: _Helper) -> None:
    # Writes the decimal digits of rsi at rdi; returns the end in rax. A leaf: the digits are
    # built in the red zone.
    a("mov rax, rsi", "test rax, rax", "jns .Lpos", "mov byte ptr [rdi], 45", "inc rdi",
      "neg rax",
      ".Lpos:", "lea r8, [rsp - 8]", "mov r9, r8", "mov r10, 10",
      ".Ldigit:", "xor edx, edx", "div r10", "add dl, 48", "dec r8", "mov byte ptr [r8], dl",
      "test rax, rax", "jne .Ldigit",
      "mov rcx, r9", "sub rcx, r8", "mov rsi, r8", "rep movsb", "mov rax, rdi", "ret")


def _print(a: _Helper, flush: bool = False) -> None:
    a("push rbp", "mov rbp, rsp", "push rbx", "push r12", "push r13", "push r14", "push r15",
      "sub rsp, 24",
      "mov r15, rdi", "mov r12, rsi", "mov r13, rdx", "mov r14, rcx")
    if flush:  # what C's stdio holds goes out first (the stack is aligned here)
        a("xor edi, edi")
        a.call_c("fflush")
    # Size: one separator or newline per value (at least the newline), plus the values.
    a("mov rbx, r13", "test rbx, rbx", "jne .Lsize0", "mov ebx, 1", ".Lsize0:", "xor ecx, ecx",
      ".Lsize:", "cmp rcx, r13", "jae .Lsized", "mov rax, r13", "sub rax, rcx",
      "mov rax, qword ptr [r12 + rax*8 - 8]", "movzx edx, byte ptr [r14 + rcx]",
      "or edx, 32", "cmp edx, 115", "jne .Lsmall", "add rbx, qword ptr [rax - 8]", "jmp .Lsizenext",
      ".Lsmall:", "add rbx, 20",
      ".Lsizenext:", "inc rcx", "jmp .Lsize")
    a(".Lsized:", "mov qword ptr [rbp - 56], rbx", f"cmp rbx, {STACK_BUFFER_MAX}", "ja .Lmmap",
      "lea rax, [rbx + 15]", "and rax, -16", "sub rsp, rax", "mov rdi, rsp", "jmp .Lfill",
      ".Lmmap:", "xor edi, edi", "mov rsi, rbx", "mov edx, 3", "mov r10d, 0x22", "mov r8, -1",
      "xor r9d, r9d", f"mov eax, {SYS_MMAP}", "syscall", "cmp rax, -4096", "ja .Lnomem",
      "mov rdi, rax")
    a(".Lfill:", "mov qword ptr [rbp - 48], rdi", "xor ebx, ebx",
      ".Lvalue:", "cmp rbx, r13", "jae .Lfilled", "movzx eax, byte ptr [r14 + rbx]",
      "test rbx, rbx", "je .Lnosep", "test eax, 32", "je .Lnosep",
      "mov byte ptr [rdi], 32", "inc rdi",
      ".Lnosep:", "or eax, 32", "mov rdx, r13", "sub rdx, rbx",
      "mov rsi, qword ptr [r12 + rdx*8 - 8]", "cmp eax, 115", "je .Lstr", "cmp eax, 98",
      "je .Lbool")
    a.call("toy.rt.fmt_int")
    a("mov rdi, rax", "jmp .Lnext",
      ".Lbool:", "test rsi, rsi", "je .Lfalse", "mov dword ptr [rdi], 0x65757274", "add rdi, 4",
      "jmp .Lnext",
      ".Lfalse:", "mov dword ptr [rdi], 0x736c6166", "mov byte ptr [rdi + 4], 101",
      "add rdi, 5", "jmp .Lnext",
      ".Lstr:", "mov rcx, qword ptr [rsi - 8]", "rep movsb",
      ".Lnext:", "inc rbx", "jmp .Lvalue")
    a(".Lfilled:", "mov byte ptr [rdi], 10", "inc rdi", "mov rsi, qword ptr [rbp - 48]",
      "mov rdx, rdi", "sub rdx, rsi", "mov rdi, r15")
    a.call("toy.rt.write_all")
    a("mov rsi, qword ptr [rbp - 56]", f"cmp rsi, {STACK_BUFFER_MAX}", "jbe .Lreturn",
      "mov rdi, qword ptr [rbp - 48]", f"mov eax, {SYS_MUNMAP}", "syscall",
      ".Lreturn:", "lea rsp, [rbp - 40]", "pop r15", "pop r14", "pop r13", "pop r12", "pop rbx",
      "pop rbp", "ret")
    a(".Lnomem:", "mov edi, 2")
    a.lea_str("rsi", b"panic: out of memory\n")
    a("mov edx, 21")
    a.call("toy.rt.write_all")
    a("mov edi, 101", f"mov eax, {SYS_EXIT_GROUP}", "syscall", "hlt")


def _panic(a: _Helper, obj: bool = False) -> None:
    # Upper-case kinds print without the separating space: "FILE:LINE:COL" is one word.
    a("push rbp", "mov rbp, rsp")
    # Replay the line shifts recorded since the line field was written (its high half).
    a("mov r8, rdx", "shr r8, 32", "mov edx, edx")
    a.rip("lea r9, [rip]", LINE_SHIFTS)
    a("mov r10d, dword ptr [r9]",
      ".Lshift:", "cmp r8, r10", "jae .Lshifted", "cmp edx, dword ptr [r9 + r8*8 + 4]",
      "jb .Lnext", "add edx, dword ptr [r9 + r8*8 + 8]", ".Lnext:", "inc r8", "jmp .Lshift",
      ".Lshifted:")
    a.lea_str("rax", b"panic:")
    a("push rax", "push rdi")
    a.lea_str("rax", b"at")
    a("push rax", "push rsi")
    a.lea_str("rax", b":")
    a("push rax", "push rdx", "push rax", "push rcx",
      "mov rsi, rsp", "mov edi, 2", "mov edx, 8")
    a.lea_str("rcx", b"ssssSISI")
    a.call("toy.rt.print")
    a("mov edi, 101")
    if obj:  # C's exit, if any; the stack is aligned (rbp and eight pushes)
        a.call(EXIT)
        a("hlt")
    else:
        a(f"mov eax, {SYS_EXIT_GROUP}", "syscall", "hlt")


def _tls_init(a: _Helper) -> None:
    # The main thread's TLS block (x86_64 variant II): the image copied to the bottom of a
    # fresh mapping (the rest, .tbss, is already zero), the thread pointer right after it,
    # pointing at itself, as %fs:0 must.
    a.rip("lea r8, [rip]", "toy.rt.tls_info")
    a(f"mov rsi, qword ptr [r8 + {TLS_BLOCK}]", "add rsi, 16", "push r8",
      "xor edi, edi", f"mov edx, {PROT_READ_WRITE}", f"mov r10d, {MAP_PRIVATE | MAP_ANONYMOUS}",
      "mov r8, -1", "xor r9d, r9d", f"mov eax, {SYS_MMAP}", "syscall", "pop r8",
      "cmp rax, -4096", "ja .Lnomem")
    a("mov rdi, rax", f"mov rsi, qword ptr [r8 + {TLS_IMAGE}]",
      f"mov rcx, qword ptr [r8 + {TLS_FILESZ}]", "rep movsb",
      f"add rax, qword ptr [r8 + {TLS_BLOCK}]", "mov qword ptr [rax], rax",
      f"mov edi, {ARCH_SET_FS}", "mov rsi, rax", f"mov eax, {SYS_ARCH_PRCTL}", "syscall", "ret")
    a(".Lnomem:", "mov edi, 127", f"mov eax, {SYS_EXIT_GROUP}", "syscall", "hlt")


def _spawn(a: _Helper, obj: bool = False) -> None:
    if obj:  # pthread_create(&handle, NULL, f, arg) when the link has pthreads
        fail = b"panic: cannot start a thread\n"
        a.weak_address("rax", "pthread_create")
        a.weak_address("rcx", "pthread_join")
        a("test rax, rax", "je .Lraw", "test rcx, rcx", "je .Lraw",
          "sub rsp, 24", "mov rdx, rdi", "mov rcx, rsi", "mov rdi, rsp", "xor esi, esi",
          "call rax", "test eax, eax", "jne .Lcfail",
          "mov rax, qword ptr [rsp]", "add rsp, 24", "ret", ".Lcfail:")
        a.lea_str("rsi", fail)
        a(f"mov edx, {len(fail)}", "mov edi, 2")
        a.call("toy.rt.write_all")
        a("mov edi, 101")
        a.call(EXIT)
        a("hlt", ".Lraw:")
    # Three pushes after the return address: the stack is aligned for the calls on failure.
    a("push rbx", "push r12", "push r13", "mov r12, rdi", "mov r13, rsi")
    a("xor edi, edi", f"mov esi, {THREAD_MAPPING_SIZE}", f"mov edx, {PROT_READ_WRITE}",
      f"mov r10d, {MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK:#x}", "mov r8, -1",
      "xor r9d, r9d", f"mov eax, {SYS_MMAP}", "syscall", "cmp rax, -4096", "ja .Lnomem",
      "mov rbx, rax")
    # A stack overflow then faults at once instead of writing over whatever is mapped below.
    a("mov rdi, rbx", f"mov esi, {PAGE_SIZE}", f"mov edx, {PROT_NONE}",
      f"mov eax, {SYS_MPROTECT}", "syscall", "test rax, rax", "jne .Lnomem")
    # The new thread's stack pointer is the block itself (a fresh mapping is already zero).
    a(f"lea rsi, [rbx + {THREAD_MAPPING_SIZE - THREAD_BLOCK_SIZE}]",
      f"mov qword ptr [rsi + {TB_FN}], r12", f"mov qword ptr [rsi + {TB_ARG}], r13",
      f"mov qword ptr [rsi + {TB_BASE}], rbx",
      f"mov qword ptr [rsi + {TB_SIZE}], {THREAD_MAPPING_SIZE}")
    # clone(flags, stack, parent_tid, child_tid, tls): the kernel writes the thread id into the
    # block's tid word before clone returns, and clears it (and wakes futex waiters on it) when
    # the thread ends, which is what join waits for. The tls argument (r8) is where a thread's
    # TLS block will go, with CLONE_SETTLS; there is none yet.
    a(f"mov edi, {CLONE_THREAD_FLAGS:#x}", "xor r8d, r8d")
    # With thread-locals, the thread's TLS block goes below its control block, the thread
    # pointer (pointing at itself) between them, and its stack below the TLS block.
    a.rip("lea r9, [rip]", "toy.rt.tls_info")
    a(f"mov rcx, qword ptr [r9 + {TLS_BLOCK}]", "test rcx, rcx", "je .Lclone",
      "push rsi", "push rdi", "lea r8, [rsi - 16]", "mov qword ptr [r8], r8",
      "mov rdi, r8", "sub rdi, rcx", f"mov rsi, qword ptr [r9 + {TLS_IMAGE}]",
      f"mov rcx, qword ptr [r9 + {TLS_FILESZ}]", "rep movsb",
      "pop rdi", "pop rsi", f"or edi, {CLONE_SETTLS:#x}", "mov rsi, r8",
      f"sub rsi, qword ptr [r9 + {TLS_BLOCK}]")
    a(".Lclone:", f"lea rdx, [rbx + {THREAD_MAPPING_SIZE - THREAD_BLOCK_SIZE + TB_TID}]",
      "mov r10, rdx", f"mov eax, {SYS_CLONE}", "syscall",
      "test rax, rax", "je .Lchild", "js .Lnothread",
      f"lea rax, [rbx + {THREAD_MAPPING_SIZE - THREAD_BLOCK_SIZE}]",
      "pop r13", "pop r12", "pop rbx", "ret")
    # The new thread resumes here, with rsp at its control block (or below its TLS block);
    # rbp = 0 ends backtraces.
    a(".Lchild:", "xor ebp, ebp", f"lea rdi, [rbx + {THREAD_MAPPING_SIZE - THREAD_BLOCK_SIZE}]")
    a.call("toy.rt.thread_start")
    a("hlt")
    nomem, nothread = b"panic: out of memory\n", b"panic: cannot start a thread\n"
    a(".Lnomem:")
    a.lea_str("rsi", nomem)
    a(f"mov edx, {len(nomem)}", "jmp .Ldie", ".Lnothread:")
    a.lea_str("rsi", nothread)
    a(f"mov edx, {len(nothread)}", ".Ldie:", "mov edi, 2")
    a.call("toy.rt.write_all")
    a("mov edi, 101")
    if obj:
        a.call(EXIT)
        a("hlt")
    else:
        a(f"mov eax, {SYS_EXIT_GROUP}", "syscall", "hlt")


def _thread_start(a: _Helper) -> None:
    # Called (never returning) with the control block in rdi and rsp just below it; the push
    # aligns the stack for the call of f.
    # Its frame is the outermost (the call from spawn's child path returns nowhere); where it
    # keeps rbx is said all the same.
    a.outermost()
    a("push rbx", a.cfi_label(cfi.def_cfa_offset(16) + cfi.offset(DWARF_REG["rbx"], 2)),
      "mov rbx, rdi", f"mov rdi, qword ptr [rbx + {TB_ARG}]",
      f"call qword ptr [rbx + {TB_FN}]", f"mov qword ptr [rbx + {TB_RESULT}], rax",
      "xor edi, edi", f"mov eax, {SYS_EXIT}", "syscall", "hlt")


def _join(a: _Helper, obj: bool = False) -> None:
    if obj:  # pthread_join(handle, &result) when spawn used pthread_create (the same test)
        a.weak_address("rax", "pthread_join")
        a.weak_address("rcx", "pthread_create")
        a("test rax, rax", "je .Lraw", "test rcx, rcx", "je .Lraw",
          "sub rsp, 24", "mov qword ptr [rsp], 0", "mov rsi, rsp", "call rax",
          "mov rax, qword ptr [rsp]", "add rsp, 24", "ret", ".Lraw:")
    # The tid word is non-zero from spawn's return until the kernel clears it as the thread
    # ends. FUTEX_WAIT returns at once (EAGAIN) if the word already changed, or early on a
    # signal (EINTR); either way the loop looks at the word again. Joining a handle twice is
    # undefined: the first join unmapped the block.
    a("mov r8, rdi",
      ".Lwait:", f"mov edx, dword ptr [r8 + {TB_TID}]", "test edx, edx", "je .Lended",
      f"lea rdi, [r8 + {TB_TID}]", f"mov esi, {FUTEX_WAIT}", "xor r10d, r10d",
      f"mov eax, {SYS_FUTEX}", "syscall", "jmp .Lwait")
    # The thread's stack is no longer in use once the word is cleared: unmap it, and with it
    # the block, so read the result first.
    a(".Lended:", f"mov r9, qword ptr [r8 + {TB_RESULT}]",
      f"mov rdi, qword ptr [r8 + {TB_BASE}]", f"mov rsi, qword ptr [r8 + {TB_SIZE}]",
      f"mov eax, {SYS_MUNMAP}", "syscall", "mov rax, r9", "ret")


def _streq(a: _Helper) -> None:
    # With equal lengths and rcx == 0, `repe cmpsb` leaves the flags of the length compare.
    a("mov rcx, qword ptr [rdi - 8]", "cmp rcx, qword ptr [rsi - 8]", "jne .Lne", "repe cmpsb",
      "jne .Lne", "mov eax, 1", "ret", ".Lne:", "xor eax, eax", "ret")


def _argv(a: _Helper) -> None:
    # Returns the argument in rax and 0 in rdx, or 1 in rdx when the index is out of bounds:
    # the caller panics, so that the panic names the caller's line.
    a("mov edx, 1")
    a.rip("cmp rdi, qword ptr [rip]", "toy.rt.argc")
    a("jae .Loob")
    a.rip("mov rax, qword ptr [rip]", "toy.rt.args")
    a("mov rax, qword ptr [rax + rdi*8]", "xor edx, edx", ".Loob:", "ret")


def _parse_int(a: _Helper) -> None:
    # Returns the value in rax and 0 in rdx, or 1 in rdx for a bad integer (as toy.rt.argv).
    # Accumulates the negated value so that INT_MIN parses; overflow flags catch the rest.
    a("mov rcx, qword ptr [rdi - 8]", "xor eax, eax", "xor r8d, r8d", "xor r9d, r9d",
      "test rcx, rcx", "je .Lbad", "cmp byte ptr [rdi], 45", "jne .Ldigit", "mov r9d, 1",
      "inc r8", "cmp r8, rcx", "je .Lbad",
      ".Ldigit:", "cmp r8, rcx", "jae .Lend", "movzx edx, byte ptr [rdi + r8]", "sub edx, 48",
      "cmp edx, 9", "ja .Lbad", "imul rax, rax, 10", "jo .Lbad", "sub rax, rdx", "jo .Lbad",
      "inc r8", "jmp .Ldigit",
      ".Lend:", "test r9, r9", "jne .Lneg", "neg rax", "jo .Lbad", ".Lneg:", "xor edx, edx",
      "ret", ".Lbad:", "mov edx, 1", "ret")


def _sleep_ms(a: _Helper) -> None:
    a("test rdi, rdi", "jle .Lreturn", "sub rsp, 24", "mov rax, rdi", "xor edx, edx",
      "mov ecx, 1000", "div rcx", "mov qword ptr [rsp], rax", "imul rdx, rdx, 1000000",
      "mov qword ptr [rsp + 8], rdx",
      ".Lagain:", "mov rdi, rsp", "mov rsi, rsp", f"mov eax, {SYS_NANOSLEEP}", "syscall",
      f"cmp rax, -{EINTR}", "je .Lagain", "add rsp, 24", ".Lreturn:", "ret")


def _clock_ns(a: _Helper) -> None:
    a("sub rsp, 24", "mov edi, 1", "mov rsi, rsp", f"mov eax, {SYS_CLOCK_GETTIME}", "syscall",
      "imul rax, qword ptr [rsp], 1000000000", "add rax, qword ptr [rsp + 8]", "add rsp, 24",
      "ret")


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
    "toy.rt.init": _init,
    EXIT: _exit,
}
_DATA = {"toy.rt.argc": 8, "toy.rt.args": 8}
# The variants for relocatable objects (see the module docstring)
_OBJECT_CODE = {
    "toy.rt.spawn" + OBJECT_SUFFIX: lambda a: _spawn(a, obj=True),
    "toy.rt.join" + OBJECT_SUFFIX: lambda a: _join(a, obj=True),
    "toy.rt.panic" + OBJECT_SUFFIX: lambda a: _panic(a, obj=True),
    EXIT + OBJECT_SUFFIX: _exit_object,
}


# The variants for dynamically linked executables (see the module docstring)
_DYNAMIC_CODE = {
    "toy.rt.spawn" + DYNAMIC_SUFFIX: _spawn_dynamic,
    "toy.rt.join" + DYNAMIC_SUFFIX: _join_dynamic,
    "toy.rt.panic" + DYNAMIC_SUFFIX: lambda a: _panic(a, obj=True),
    "toy.rt.print" + DYNAMIC_SUFFIX: lambda a: _print(a, flush=True),
    EXIT + DYNAMIC_SUFFIX: _exit_dynamic,
}


def lower_lazy_symbol(name: str) -> LazySymbol | None:
    if name == LINE_SHIFTS:  # no shifts yet; the linker appends them
        return LazySymbol(Code(bytes(4), [], 4), "rodata", kind="object", listed=False)
    if name == TLS_INFO:  # the linker writes what it holds
        return LazySymbol(Code(bytes(24), [], 8), "rodata", kind="object")
    if name == CTORS_INFO:  # the linker writes what it holds
        return LazySymbol(Code(bytes(32), [], 8), "rodata", kind="object")
    if name in (START_TLS, "_start" + CTORS_SUFFIX, START_TLS + CTORS_SUFFIX):
        a = _Helper()  # _start for a program with thread-locals, constructors, or both
        _start(a, tls=name.startswith(START_TLS), ctors=name.endswith(CTORS_SUFFIX))
        return LazySymbol(a.assemble(16), "text", binding="global")
    if name == "_start" + DYNAMIC_SUFFIX:
        a = _Helper()
        _start_dynamic(a)
        return LazySymbol(a.assemble(16), "text", binding="global")
    if name in _DATA:
        return LazySymbol(Code(b"", [], 8, size=_DATA[name]), "bss", kind="object")
    gen = _CODE.get(name) or _OBJECT_CODE.get(name) or _DYNAMIC_CODE.get(name)
    if gen is None:
        return None
    a = _Helper()
    gen(a)
    return LazySymbol(a.assemble(16), "text", binding="global" if name == "_start" else "local")
