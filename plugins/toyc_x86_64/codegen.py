"""Lowering one checked Toy function to x86_64 assembly (System V AMD64 ABI).

Locals live where `regalloc` puts them: callee-saved registers, caller-saved ones no call
reaches, or stack slots below rbp. Expressions are evaluated into operands (`Val`) that need no
code of their own when they can: a literal is an immediate, a local its register or slot. Only
what is computed takes a scratch register, picked from the caller-saved ones no local holds.
When a call is about to overwrite them, the values in them move to callee-saved registers no
local has (the function then saves those too), or to spill slots in the frame; when no scratch
register is free, the oldest value moves to a spill slot. Conditions compare and branch without
a 0/1 in between; `while` tests at the bottom, and what its test computes that the body's
first statements use again stays in a register for them (`regalloc.carried_values`); division
by a constant becomes shifts or a multiply (`toyc.divconst`); `lea` adds, and multiplies by
2, 3, 4, 5, 8 and 9; the instruction that computes a local's new value writes the local's
register. The walk over the function is
toyc's `FunctionLowering`; statements, expressions and the frame are this module's.

The frame: `push rbp; mov rbp, rsp`, the callee-saved registers the function uses, then the
slots of its stack locals and spill slots, keeping rsp 16-byte aligned at every call (nothing is
pushed in the body but the stack arguments of a call of an extern with more than six, which
the call's own code removes). Its call frame information (`toyc.cfi`) says where each saved
register is, so that a debugger finds a caller's register locals. Panics jump to cold stubs
after the return, which call the runtime's panic routine with a message, the file name, the line
and the column. The line is a 64-bit immediate operand the linker writes (a line field, see
`toyc.code`), so that a function that only moved to other lines is not regenerated.
"""

from __future__ import annotations

import re

from toyc import ast as A
from toyc import cfi
from toyc.code import EXIT, Code, Target, lazy, nav, uav
from toyc.consteval import int_binary
from toyc.divconst import magic, power_of_two
from toyc.layout import STR_HEADER
from toyc.lowering import RETURN_LABEL, FunctionLowering, slot_size
from toyc.source import Span
from toyc.types import BOOL, STR, VOID

from .assembler import Asm
from .regalloc import (
    ARG_REGS,
    SAVED_REGS,
    assign,
    assigned_local,
    has_call,
    key_locals,
    statement_exprs,
    value_key,
)
from .relocs import R_X86_64_PC32, R_X86_64_PLT32, R_X86_64_TPOFF32

FUNCTION_ALIGN = 16
# In frame operands, "@N" stands for N bytes below the saved registers: how many registers
# are saved is known only once the whole function is generated.
BELOW_SAVED = re.compile(r"@(\d+)")
EPILOGUE = "@epilogue"  # where the epilogue goes, once the saved registers are known
PRINT_KIND = {"int": b"i", "bool": b"b", "str": b"s"}

SCRATCH = ("rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11")
NUMBER = {r: i for i, r in enumerate(("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                      "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"))}
DWARF_REG = {r: i for i, r in enumerate(("rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp",
                                         "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"))}
DWARF_RSP, DWARF_RBP = DWARF_REG["rsp"], DWARF_REG["rbp"]


def low8(r: str) -> str:
    if r[1:].isdigit():
        return r + "b"
    return {"rax": "al", "rcx": "cl", "rdx": "dl", "rbx": "bl", "rsi": "sil",
            "rdi": "dil"}[r]


def low32(r: str) -> str:
    return r + "d" if r[1:].isdigit() else "e" + r[1:]


# condition codes: of a comparison, its negation, and with its operands swapped
CC = {"==": "e", "!=": "ne", "<": "l", "<=": "le", ">": "g", ">=": "ge"}
NEGATE = {"e": "ne", "ne": "e", "l": "ge", "ge": "l", "g": "le", "le": "g"}
SWAP = {"e": "e", "ne": "ne", "l": "g", "g": "l", "le": "ge", "ge": "le"}
ARITH = {"+": "add", "-": "sub", "&": "and", "|": "or", "^": "xor"}
COMMUTES = {"+", "*", "&", "|", "^"}
SHIFT = {"<<": "shl", ">>": "sar"}
LEA_SCALE = {3: 2, 5: 4, 9: 8}


def _imm32(v: int) -> bool:
    return -(1 << 31) <= v < (1 << 31)


class Val:
    """An operand: an immediate ("imm", `x` the value), a register ("reg", `x` its name) or
    a memory operand ("mem", `x` the address, e.g. "[rbp - @24]", see BELOW_SAVED). `temp`:
    it owns its scratch register or spill slot, which `free` gives back. `pins`: an
    instruction being put together needs it where it is, so it must not be spilled now."""

    __slots__ = ("kind", "x", "temp", "slot", "pins")

    def __init__(self, kind: str, x, temp: bool = False, slot: int = -1):
        self.kind, self.x, self.temp, self.slot, self.pins = kind, x, temp, slot, 0

    def __repr__(self) -> str:
        return f"Val({self.kind}, {self.x}{', temp' if self.temp else ''})"


class FunctionGen(FunctionLowering):
    def __init__(self, fn: A.FnDecl, path: str, program=None):
        super().__init__(fn, path)
        self.a = Asm()
        self.program = program  # to tell a call of an extern from a call of a Toy function
        self.assignment = assign(fn)
        self.saved = set(self.assignment.saved)  # grows as temporaries are kept across calls
        self.scratch = [r for r in SCRATCH if r not in self.assignment.free]
        # callee-saved registers no local has, for values that live across a call
        self.keep_free = [r for r in reversed(SAVED_REGS) if r not in self.saved]
        self.kept: dict[str, Val] = {}
        # the stack locals' slots, below the saved registers; spill slots below those
        below = 0
        self.slots = []
        self.home: list[Val] = []
        for i, local in enumerate(fn.locals):
            r = self.assignment.reg[i]
            if r is not None:
                self.slots.append(0)
                self.home.append(Val("reg", r))
                continue
            below += slot_size(local.ty)
            self.slots.append(below)
            self.home.append(Val("mem", f"[rbp - @{below}]"))
        self.spill_base = below
        self.spill_count = 0
        self.free_slots: list[int] = []
        self.busy: dict[str, Val | None] = {}  # scratch register -> the value it holds
        self.cold_code: list[list[str]] = []
        # values carried from a loop's test into its body (see regalloc): those available
        # now and where, those the test being generated computes into their register, and
        # the register an expression being computed for one may land in
        self.carrying: dict[tuple, str] = {}
        self.defining: dict[tuple, str] = {}
        self.target: str | None = None
        self.keys: dict[int, tuple | None] = {}

    # ---- function -----------------------------------------------------------------------------

    def lower(self) -> Code:
        a = self.a
        self.mark_entry()
        prologue_at = len(a.lines)
        self.move_params()
        self.block(self.fn.body)
        assert not self.busy and not self.kept, (self.busy, self.kept)
        self.place(RETURN_LABEL)
        self.mark_exit()
        a(EPILOGUE)
        for lines in self.cold_code:
            a(*lines)
        for label, message, span in self.cold:
            a(f"{label}:")
            self.mark(span.line, span.col)
            self.lea("rdi", uav(message))
            self.lea("rsi", uav(self.path.encode()))
            a.line_field(f"movabs rdx, {span.line}", span.line - self.fn.span.line)
            a(f"mov ecx, {span.col}")
            a.reloc("call 0", lazy("toy.rt.panic"), R_X86_64_PLT32, -4)
        a.lines[prologue_at:prologue_at] = self.prologue()
        # each return's copy of the epilogue, now that the saved registers are known
        lines = []
        for line in a.lines:
            if line == EPILOGUE:
                lines += self.epilogue()
            else:
                lines.append(line)
        a.lines = lines
        saved = 8 * len(self.saved)
        a.lines = [BELOW_SAVED.sub(lambda m: str(int(m.group(1)) + saved), line)
                   if "@" in line else line for line in a.lines]
        self.slots = [x + saved if v.kind == "mem" else 0 for x, v in zip(self.slots, self.home,
                                                                         strict=True)]
        code = self.finish(a.assemble(FUNCTION_ALIGN))
        code.local_regs = [DWARF_REG[v.x] if v.kind == "reg" else -1 for v in self.home]
        return code

    def saved_order(self) -> list[str]:
        return [r for r in SAVED_REGS if r in self.saved]

    def frame_size(self) -> int:
        """Bytes below the saved registers: slots, spill slots, and rsp's alignment."""
        saved = 8 * len(self.saved)
        used = saved + self.spill_base + 8 * self.spill_count
        return ((used + 15) & ~15) - saved

    def prologue(self) -> list[str]:
        out = ["push rbp"]
        out.append(self.a.cfi_label(cfi.def_cfa_offset(16) + cfi.offset(DWARF_RBP, 2)))
        out.append("mov rbp, rsp")
        out.append(self.a.cfi_label(cfi.def_cfa_register(DWARF_RBP)))
        for i, r in enumerate(self.saved_order()):
            out.append(f"push {r}")
            out.append(self.a.cfi_label(cfi.offset(DWARF_REG[r], 3 + i)))
        size = self.frame_size()
        if size:
            out.append(f"sub rsp, {size}")
        return out

    def epilogue(self) -> list[str]:
        """The lines that return: restore the saved registers and the caller's frame. Each
        `return` has a copy (a jump to one would cost more than the copy)."""
        a = self.a
        out = ["xor eax, eax"] if self.fn.name == "main" and self.fn.result_type == VOID else []
        saved = self.saved_order()
        if self.frame_size():
            # (loads and `leave`: `lea rsp, [rbp - N]` before pops costs more, on AMD Zen
            # a third of a call of fib)
            out += [f"mov {r}, qword ptr [rbp - {8 * (i + 1)}]" for i, r in enumerate(saved)]
            out.append("leave")
        else:
            out += [f"pop {r}" for r in reversed(saved)]
            out.append("pop rbp")
        return out + [a.cfi_label(cfi.remember_state() + cfi.def_cfa(DWARF_RSP, 8)), "ret",
                      a.cfi_label(cfi.restore_state())]

    def move_params(self) -> None:
        moves = []
        if self.fn.exports:
            # C may call an exported function, and the ABI defines only the low byte of a
            # `bool` argument: the rest of the register is whatever the caller left there.
            for i, ty in enumerate(self.fn.param_types):
                if ty == BOOL:
                    self.a(f"movzx {low32(ARG_REGS[i])}, {low8(ARG_REGS[i])}")
        for i, _ in enumerate(self.fn.params):
            home = self.home[i]
            if not (home.kind == "reg" and home.x == ARG_REGS[i]):
                moves.append((home, Val("reg", ARG_REGS[i])))
        self.parallel_move(moves)

    # ---- registers and slots ------------------------------------------------------------------

    def slot_text(self, n: int) -> str:
        return f"[rbp - @{self.spill_base + 8 * (n + 1)}]"

    def new_slot(self) -> int:
        if self.free_slots:
            return self.free_slots.pop()
        self.spill_count += 1
        return self.spill_count - 1

    def alloc(self, hint: str | None = None, avoid: tuple[str, ...] = ()) -> str:
        """A scratch register for a new value (reserved until a `Val` owns it)."""
        if hint is not None and hint == self.target and hint not in self.busy:
            self.busy[hint] = None
            return hint
        free = [r for r in self.scratch if r not in self.busy and r not in avoid]
        if hint in free:
            r = hint
        elif free:
            r = free[0]
        else:
            r = self.spill_one(avoid)
        self.busy[r] = None
        return r

    def alloc_beside(self, *keep: Val, hint: str | None = None,
                     avoid: tuple[str, ...] = ()) -> str:
        """`alloc`, while the values in `keep` stay where they are (not spilled to make
        room)."""
        for v in keep:
            v.pins += 1
        r = self.alloc(hint, avoid)
        for v in keep:
            v.pins -= 1
        return r

    def spill_one(self, avoid: tuple[str, ...] = ()) -> str:
        for r, v in self.busy.items():
            if v is not None and not v.pins and r not in avoid:
                self.spill(v)
                return r
        raise AssertionError("out of scratch registers")

    def spill(self, v: Val) -> None:
        slot = self.new_slot()
        text = self.slot_text(slot)
        self.a(f"mov qword ptr {text}, {v.x}")
        del self.busy[v.x]
        v.kind, v.x, v.slot = "mem", text, slot

    def spill_all(self, keep: tuple[Val, ...] = ()) -> None:
        """Move every value in a scratch register, but `keep`, out of the way of a call: to
        a callee-saved register while one is free (the function then saves it), else to a
        spill slot."""
        for v in list(self.busy.values()):
            if v is not None and all(v is not k for k in keep):
                if self.keep_free:
                    r = self.keep_free.pop()
                    self.saved.add(r)
                    self.a(f"mov {r}, {v.x}")
                    del self.busy[v.x]
                    v.x = r
                    self.kept[r] = v
                else:
                    self.spill(v)

    def temp(self, r: str) -> Val:
        v = Val("reg", r, True)
        self.busy[r] = v
        return v

    def free(self, v: Val | None) -> None:
        if v is None or not v.temp:
            return
        if v.kind == "reg":
            if self.kept.get(v.x) is v:
                del self.kept[v.x]
                self.keep_free.append(v.x)
            else:
                self.busy.pop(v.x, None)
        elif v.kind == "mem" and v.slot >= 0:
            self.free_slots.append(v.slot)
        v.temp = False

    def take(self, r: str) -> None:
        """Make scratch register `r` free for an instruction that needs it (the value in it
        moves to another register), and reserve it."""
        assert r not in self.busy or self.busy[r] is not None, f"{r} is reserved"
        v = self.busy.get(r)
        if v is not None:
            self.move_out(v, (r,))
        self.busy[r] = None

    def move_out(self, v: Val, regs: tuple[str, ...]) -> None:
        """Move temporary `v` from its register to a scratch register not in `regs`."""
        to = self.alloc_beside(v, avoid=regs)
        self.a(f"mov {to}, {v.x}")
        del self.busy[v.x]
        v.x = to
        self.busy[to] = v

    def release(self, r: str) -> None:
        if self.busy.get(r, 0) is None:
            del self.busy[r]

    def load(self, v: Val, hint: str | None = None) -> Val:
        """Make `v` own a scratch register holding its value (in place); returns `v`."""
        if v.kind == "reg" and v.temp:
            return v
        r = self.alloc_beside(v, hint=hint)
        if v.kind == "imm":
            self.mov_imm(r, v.x)
        elif v.kind == "reg":
            self.a(f"mov {r}, {v.x}")
        else:
            self.a(f"mov {r}, qword ptr {v.x}")
        self.free(v)
        v.kind, v.x, v.temp, v.slot = "reg", r, True, -1
        self.busy[r] = v
        return v

    def in_reg(self, v: Val) -> str:
        """A register holding `v`'s value, which may be a local's (not to be written)."""
        if v.kind != "reg":
            self.load(v)
        return v.x

    def src(self, v: Val) -> str:
        """`v` as a source operand: an immediate of 32 bits, a register or memory."""
        if v.kind == "imm":
            if _imm32(v.x):
                return str(v.x)
            self.load(v)
        if v.kind == "mem":
            return f"qword ptr {v.x}"
        return v.x

    def mov_imm(self, reg: str, v: int) -> None:
        if v == 0:
            self.a(f"xor {low32(reg)}, {low32(reg)}")
        elif 0 < v < (1 << 32):
            self.a(f"mov {low32(reg)}, {v}")
        elif _imm32(v):
            self.a(f"mov {reg}, {v}")
        else:
            self.a(f"movabs {reg}, {v & ((1 << 64) - 1):#x}")

    def store(self, dst: Val, v: Val) -> None:
        """dst = v, for a destination register or qword in memory."""
        if dst.kind == "reg":
            if v.kind == "imm":
                self.mov_imm(dst.x, v.x)
            elif not (v.kind == "reg" and v.x == dst.x):
                self.a(f"mov {dst.x}, {self.src(v)}")
        else:
            if v.kind == "mem" or (v.kind == "imm" and not _imm32(v.x)):
                self.load(v)
            self.a(f"mov qword ptr {dst.x}, {self.src(v)}")

    def parallel_move(self, moves: list[tuple[Val, Val]]) -> None:
        """Each (destination, source) at once: no destination is written before every source
        that reads it has been read."""
        pending = [m for m in moves if not (m[0].kind == "reg" and m[1].kind == "reg"
                                            and m[0].x == m[1].x)]
        while pending:
            for i, (dst, v) in enumerate(pending):
                if dst.kind != "reg" or not any(o.kind == "reg" and o.x == dst.x
                                                for j, (_, o) in enumerate(pending) if j != i):
                    self.store(dst, v)
                    del pending[i]
                    break
            else:  # a cycle of registers: one of them goes through a free one
                dst = pending[0][0]
                reads = {o.x for _, o in pending if o.kind == "reg"}
                writes = {d.x for d, _ in pending}
                spare = next(r for r in ("rax", "r10", "r11")
                             if r not in reads and r not in writes)
                self.a(f"mov {spare}, {dst.x}")
                pending = [(d, Val("reg", spare) if o.kind == "reg" and o.x == dst.x else o)
                           for d, o in pending]

    def retarget(self, r: str, to: str) -> bool:
        """Make the instruction that just computed scratch register `r` write register `to`
        instead, if it only writes `r` (it reads its operands before writing, so `to` may be
        one of them); whether it could. Saves the move of a value computed for a local."""
        lines = self.a.lines
        i = len(lines) - 1
        while i >= 0 and lines[i].startswith(".Lreloc"):  # (a label that marks its end)
            i -= 1
        if i < 0:
            return False
        mnemonic, _, operands = lines[i].partition(" ")
        dst, comma, rest = operands.partition(", ")
        if mnemonic in ("add", "sub") and dst == r and (rest in NUMBER or (
                rest.lstrip("-").isdigit() and _imm32(int(rest)) and _imm32(-int(rest)))):
            # r += x becomes to = r + x
            if rest in NUMBER:
                if mnemonic == "sub":
                    return False
                lines[i] = f"lea {to}, [{r} + {rest}]"
            else:
                lines[i] = f"lea {to}, [{r} + {int(rest) if mnemonic == 'add' else -int(rest)}]"
            return True
        if not comma or mnemonic not in ("mov", "movzx", "movabs", "lea", "imul") or \
                (mnemonic == "imul" and ", " not in rest) or dst not in (r, low32(r)):
            return False
        if mnemonic == "mov" and rest.startswith("byte"):
            return False
        new = to if dst == r else low32(to)
        lines[i] = f"{mnemonic} {new}, {rest}"
        return True

    # ---- addresses ----------------------------------------------------------------------------

    def lea(self, reg: str, target: Target, addend: int = 0) -> None:
        if target.kind == "uav":
            addend += STR_HEADER
        self.a.reloc(f"lea {reg}, [rip]", target, R_X86_64_PC32, addend - 4)

    def tls_address(self, name: str, reg: str) -> None:
        """`reg` = the address of this thread's copy of thread-local `name`: the thread pointer
        (which %fs:0 holds) plus the variable's offset from it (local exec). Encoded by hand:
        keystone makes %fs:[disp32] RIP-relative and drops a zero displacement."""
        n = NUMBER[reg]
        rex = 0x48 | (n >> 3) << 2
        modrm = (n & 7) << 3 | 4
        self.a(f".byte 0x64, {rex:#x}, 0x8b, {modrm:#x}, 0x25, 0, 0, 0, 0")  # mov reg, fs:[0]
        rex = 0x48 | (n >> 3) << 2 | (n >> 3)
        modrm = 0x80 | (n & 7) << 3 | (n & 7)
        self.a.reloc(f".byte {rex:#x}, 0x8d, {modrm:#x}, 0, 0, 0, 0", nav(name),
                     R_X86_64_TPOFF32, 0)  # lea reg, [reg + offset]

    def global_value(self, e: A.Name, hint: str | None = None) -> Val:
        r = self.alloc(hint)
        if e.kind == "tls":
            self.tls_address(e.name, r)
            self.a(f"movzx {low32(r)}, byte ptr [{r}]" if e.ty == BOOL
                   else f"mov {r}, qword ptr [{r}]")
        elif e.ty == BOOL:
            self.a.reloc(f"movzx {low32(r)}, byte ptr [rip]", nav(e.name), R_X86_64_PC32, -4)
        else:
            self.a.reloc(f"mov {r}, qword ptr [rip]", nav(e.name), R_X86_64_PC32, -4)
        return self.temp(r)

    def store_global(self, t: A.Name, v: Val) -> None:
        r = self.in_reg(v) if v.kind != "imm" else self.load(v).x
        if t.kind == "tls":
            at = self.alloc_beside(v)
            self.tls_address(t.name, at)
            self.a(f"mov byte ptr [{at}], {low8(r)}" if t.ty == BOOL
                   else f"mov qword ptr [{at}], {r}")
            self.release(at)
        elif t.ty == BOOL:
            self.a.reloc(f"mov byte ptr [rip], {low8(r)}", nav(t.name), R_X86_64_PC32, -4)
        else:
            self.a.reloc(f"mov qword ptr [rip], {r}", nav(t.name), R_X86_64_PC32, -4)

    def array_base(self, base: A.Name) -> Val:
        """A scratch register holding the address of global or thread-local array `base`
        (a local array is reached from rbp instead)."""
        r = self.alloc()
        if base.kind == "tls":
            self.tls_address(base.name, r)
        else:
            self.a.reloc(f"lea {r}, [rip]", nav(base.name), R_X86_64_PC32, -4)
        return self.temp(r)

    def check_index(self, index: Val, length: int, span: Span) -> None:
        """Panic unless 0 <= index < length."""
        if index.kind == "imm":
            if not 0 <= index.x < length:
                self.a(f"jmp {self.panic_label('index out of bounds', span)}")
            return
        if not _imm32(length):
            length_val = Val("imm", length)
            index.pins += 1
            self.load(length_val)
            index.pins -= 1
            self.a(f"cmp {self.src(index)}, {length_val.x}")
            self.free(length_val)
        else:
            self.a(f"cmp {self.src(index)}, {length}")
        self.a(f"jae {self.panic_label('index out of bounds', span)}")

    def element(self, e: A.Index, index: Val, base: Val | None) -> str:
        """The memory operand of array element `e`, from its checked index and, for a
        global array, the register holding the array's address."""
        ty = e.base.ty
        scale = ty.elem.size
        if index.kind == "imm" and not 0 <= index.x < ty.length:
            index = Val("imm", 0)  # (never reached: the check jumped to the panic)
        if base is None:
            start = self.slots[e.base.local]
            if index.kind == "imm":
                return f"[rbp - @{start - index.x * scale}]"
            return f"[rbp + {self.in_reg(index)}*{scale} - @{start}]"
        if index.kind == "imm":
            return f"[{base.x} + {index.x * scale}]"
        return f"[{base.x} + {self.in_reg(index)}*{scale}]"

    def element_at(self, e: A.Index, index: Val, then) -> None:
        """Call `then(operand)` with the memory operand of element `e` (index checked)."""
        base = None
        index.pins += 1
        if index.kind == "mem":
            self.load(index)
        if e.base.kind != "local":
            base = self.array_base(e.base)
            base.pins += 1
        then(self.element(e, index, base))
        index.pins -= 1
        if base is not None:
            base.pins -= 1
            self.free(base)

    # ---- statements ---------------------------------------------------------------------------

    def place(self, label: str) -> None:
        """Define `label` here, dropping a jump to it just before (over other labels)."""
        lines = self.a.lines
        i = len(lines) - 1
        while i >= 0 and lines[i].endswith(":"):
            i -= 1
        if i >= 0 and lines[i] == f"jmp {label}":
            del lines[i]
        lines.append(f"{label}:")

    def jump(self, label: str) -> None:
        self.a(f"jmp {label}")

    def stmt(self, s: A.Stmt) -> None:
        if isinstance(s, A.While):
            self.loop(s)
        elif isinstance(s, A.Return):
            self.mark(s.span.line, s.span.col)
            if s.value is not None:
                v = self.expr(s.value, "rax")
                self.store(Val("reg", "rax"), v)
                self.free(v)
            if s is self.fn.body.stmts[-1]:
                self.jump(RETURN_LABEL)  # (the epilogue is next)
            else:
                self.a(EPILOGUE)
        elif isinstance(s, A.ExprStmt):
            self.mark(s.span.line, s.span.col)
            self.free(self.expr(s.expr))
        else:
            super().stmt(s)

    def loop(self, s: A.While) -> None:
        """The body first, the test at the bottom: one branch per iteration. The values the
        test carries into the body are in their registers when the body starts, which it
        does only from the test."""
        top, test, end = self.label(), self.label(), self.label()
        forever = isinstance(s.cond, A.BoolLit) and s.cond.value
        carried = self.assignment.carried.get(id(s), [])
        self.mark(s.span.line, s.span.col)
        if not forever:
            self.jump(test)
        self.place(top)
        self.loops.append((top if forever else test, end))
        self.block(s.body, dict(carried))
        self.loops.pop()
        if forever:
            self.jump(top)
        else:
            self.place(test)
            self.mark(s.span.line, s.span.col)
            self.defining = dict(carried)
            self.jump_if(s.cond, top, True)
            self.defining, self.carrying = {}, {}
        self.place(end)

    def block(self, b: A.Block, carried: dict[tuple, str] | None = None) -> None:
        """A block; a loop's body starts with the values its test carried (`carried`),
        which last while its statements are simple and call nothing, and each until a local
        it reads is assigned."""
        scope = [self.a.point(), -1]
        self.scopes.append(scope)
        self.carrying = carried or {}
        for st in b.stmts:
            if self.carrying and (not isinstance(st, (A.Let, A.Assign, A.ExprStmt)) or
                                  any(has_call(e) for e in statement_exprs(st))):
                self.carrying = {}
            self.stmt(st)
            if self.carrying:
                assigned = assigned_local(st)
                self.carrying = {k: r for k, r in self.carrying.items()
                                 if assigned not in key_locals(k)}
        self.carrying = {}
        scope[1] = self.a.point()

    def branch_false(self, cond: A.Expr, label: str) -> None:
        self.jump_if(cond, label, False)

    def let(self, s: A.Let) -> None:
        ty = self.fn.locals[s.local].ty
        if ty.is_array:
            self.zero_array(s.local)
            if isinstance(s.init, A.ArrayLit):
                below = self.slots[s.local]
                for i, x in enumerate(s.init.elems):
                    v = self.expr(x)
                    if ty.elem.size == 8:
                        self.store(Val("mem", f"[rbp - @{below - 8 * i}]"), v)
                    else:
                        self.store_byte(f"[rbp - @{below - i}]", v)
                    self.free(v)
            return
        if s.init is None:
            init = Val("imm", 0)
            if ty == STR:
                r = self.alloc()
                self.lea(r, uav(b""))
                init = self.temp(r)
            self.store(self.home[s.local], init)
            self.free(init)
            return
        self.set_local(s.local, "", s.init, s.span)

    def zero_array(self, local: int) -> None:
        below = self.slots[local]
        qwords = slot_size(self.fn.locals[local].ty) // 8
        zero = self.alloc()
        self.a(f"xor {low32(zero)}, {low32(zero)}")
        if qwords <= 8:
            for i in range(qwords):
                self.a(f"mov qword ptr [rbp - @{below - 8 * i}], {zero}")
        else:
            count = self.alloc()
            loop = self.label()
            self.a(f"mov {count}, {-qwords}", f"{loop}:",
                   f"mov qword ptr [rbp + {count}*8 - @{below - 8 * qwords}], {zero}",
                   f"add {count}, 1", f"jne {loop}")
            self.release(count)
        self.release(zero)

    def store_byte(self, at: str, v: Val) -> None:
        if v.kind == "imm":
            self.a(f"mov byte ptr {at}, {v.x & 0xFF}")
        else:
            self.a(f"mov byte ptr {at}, {low8(self.in_reg(v))}")

    def assign(self, s: A.Assign) -> None:
        t = s.target
        op = s.op[:-1]  # "+=" -> "+", "=" -> ""
        if isinstance(t, A.Name) and t.kind == "local":
            self.set_local(t.local, op, s.value, s.span)
        elif isinstance(t, A.Name):
            v = self.expr(s.value)
            if op:
                g = self.global_value(t)
                v = self.binop(op, g, v, s.span)
            self.store_global(t, v)
            self.free(v)
        else:
            self.set_element(t, op, s.value, s.span)

    def set_local(self, local: int, op: str, e: A.Expr, span: Span) -> None:
        home = self.home[local]
        # x = x OP y: the same as x OP= y
        if not op and isinstance(e, A.Binary) and (e.op in ARITH or e.op in SHIFT or
                                                   e.op in ("*", "/", "%")) \
                and isinstance(e.lhs, A.Name) and e.lhs.kind == "local" and \
                e.lhs.local == local:
            op, e, span = e.op, e.rhs, e.span
        if not op:
            v = self.expr(e)
            if not (home.kind == "reg" and v.kind == "reg" and v.temp and
                    self.retarget(v.x, home.x)):
                self.store(home, v)
            self.free(v)
            return
        v = self.expr(e)
        if home.kind == "mem" and (op in ARITH or (op in SHIFT and v.kind == "imm")) and \
                not (v.kind == "imm" and not _imm32(v.x)):
            if v.kind == "mem":
                self.load(v)
            mnemonic = ARITH.get(op) or SHIFT[op]
            operand = self.src(v) if op in ARITH else str(v.x & 63)
            self.a(f"{mnemonic} qword ptr {home.x}, {operand}")
            self.free(v)
            return
        if home.kind == "reg":
            result = self.binop(op, Val("reg", home.x), v, span, in_place=True)
        else:
            v.pins += 1
            current = self.load(Val("mem", home.x))
            v.pins -= 1
            result = self.binop(op, current, v, span)
        self.store(home, result)
        self.free(result)

    def set_element(self, t: A.Index, op: str, e: A.Expr, span: Span) -> None:
        index = self.expr(t.index)
        self.check_index(index, t.base.ty.length, t.span)
        v = self.expr(e)
        is_bool = t.base.ty.elem == BOOL
        if not op:
            v.pins += 1
            if is_bool and v.kind == "mem":
                self.load(v)
            self.element_at(t, index, lambda at: self.store_byte(at, v) if is_bool
                            else self.store(Val("mem", at), v))
            v.pins -= 1
        elif op in ARITH and not (v.kind == "imm" and not _imm32(v.x)):
            if v.kind == "mem":
                self.load(v)
            v.pins += 1
            self.element_at(t, index,
                            lambda at: self.a(f"{ARITH[op]} qword ptr {at}, {self.src(v)}"))
            v.pins -= 1
        else:
            # the element's address in one register, kept while the value is computed
            v.pins += 1
            holder: list[str] = []

            def address(at: str) -> None:
                r = self.alloc()
                self.a(f"lea {r}, {at}")
                holder.append(r)

            self.element_at(t, index, address)
            v.pins -= 1
            at = self.temp(holder[0])
            at.pins += 1
            current = self.alloc()
            self.a(f"mov {current}, qword ptr [{at.x}]")
            result = self.binop(op, self.temp(current), v, span)
            self.a(f"mov qword ptr [{at.x}], {self.in_reg(result)}")
            self.free(result)
            at.pins -= 1
            self.free(at)
            v = None
        self.free(v)
        self.free(index)

    # ---- conditions ---------------------------------------------------------------------------

    def jump_if(self, e: A.Expr, label: str, when: bool) -> None:
        """Jump to `label` when `e` is `when`; fall through otherwise."""
        if isinstance(e, A.BoolLit):
            if e.value == when:
                self.jump(label)
            return
        if isinstance(e, A.Unary) and e.op == "not":
            self.jump_if(e.operand, label, not when)
            return
        if isinstance(e, A.Binary) and e.op in ("and", "or"):
            if (e.op == "and") != when:  # and/false, or/true: either operand decides
                self.jump_if(e.lhs, label, when)
                self.jump_if(e.rhs, label, when)
            else:
                skip = self.label()
                self.jump_if(e.lhs, skip, not when)
                self.jump_if(e.rhs, label, when)
                self.place(skip)
            return
        if isinstance(e, A.Binary) and e.op in CC and e.lhs.ty != STR:
            cc = self.compare(e)
            self.a(f"j{cc if when else NEGATE[cc]} {label}")
            return
        v = self.expr(e)
        self.test(v)
        self.a(f"{'jne' if when else 'je'} {label}")

    def test(self, v: Val) -> None:
        """Set the flags from a bool: ZF when it is false."""
        if v.kind == "imm":
            self.load(v)
        if v.kind == "mem":
            self.a(f"cmp qword ptr {v.x}, 0")
        else:
            self.a(f"test {v.x}, {v.x}")
        self.free(v)

    def compare(self, e: A.Binary) -> str:
        """Compare `e`'s operands; the condition code under which `e` holds."""
        cc = CC[e.op]
        mask = self.remainder_test(e)
        if mask is not None:
            x, m = mask
            self.a(f"test {self.src(x)}, {m.x}")
            self.free(m)
            self.free(x)
            return cc
        lhs = self.expr(e.lhs)
        rhs = self.expr(e.rhs)
        if lhs.kind == "imm" and rhs.kind != "imm":
            lhs, rhs, cc = rhs, lhs, SWAP[cc]
        if lhs.kind == "imm" or (lhs.kind == "mem" and rhs.kind == "mem"):
            rhs.pins += 1
            self.load(lhs)
            rhs.pins -= 1
        if rhs.kind == "imm" and not _imm32(rhs.x):
            lhs.pins += 1
            self.load(rhs)
            lhs.pins -= 1
        if rhs.kind == "imm" and rhs.x == 0 and lhs.kind == "reg":
            self.a(f"test {lhs.x}, {lhs.x}")
        else:
            self.a(f"cmp {self.src(lhs)}, {self.src(rhs)}")
        self.free(lhs)
        self.free(rhs)
        return cc

    def remainder_test(self, e: A.Binary) -> tuple[Val, Val] | None:
        """`x % 2**k == 0` (or `!=`): a test of x's low k bits, whatever x's sign."""
        if e.op not in ("==", "!=") or not isinstance(e.rhs, A.IntLit) or e.rhs.value != 0:
            return None
        x = e.lhs
        if not (isinstance(x, A.Binary) and x.op == "%" and isinstance(x.rhs, A.IntLit)):
            return None
        k = power_of_two(abs(x.rhs.value))
        if not k:
            return None
        v = self.expr(x.lhs)
        m = Val("imm", (1 << k) - 1)
        if not _imm32(m.x):
            v.pins += 1
            self.load(m)
            v.pins -= 1
        if v.kind == "imm":
            m.pins += 1
            self.load(v)
            m.pins -= 1
        return v, m

    # ---- expressions --------------------------------------------------------------------------

    def expr(self, e: A.Expr, hint: str | None = None) -> Val | None:
        """Evaluate `e`; its value as an operand (None for a call without a result)."""
        if self.carrying or self.defining:
            key = value_key(e, self.keys)
            if key is not None:
                r = self.carrying.get(key)
                if r is not None:
                    return Val("reg", r)
                r = self.defining.pop(key, None)
                if r is not None:
                    return self.define(e, key, r)
        return self.compute(e, hint)

    def define(self, e: A.Expr, key: tuple, r: str) -> Val:
        """Compute carried value `e` into its register `r`, for the loop's body (and the rest
        of the test)."""
        outer, self.target = self.target, r
        v = self.compute(e, r)
        self.target = outer
        if v.kind == "reg" and v.x == r and v.temp:
            del self.busy[r]  # (it is the carried value's register, not a scratch one)
            v.temp = False
        else:
            self.store(Val("reg", r), v)
            self.free(v)
        self.carrying[key] = r
        return Val("reg", r)

    def compute(self, e: A.Expr, hint: str | None = None) -> Val | None:
        if isinstance(e, A.IntLit):
            return Val("imm", e.value)
        if isinstance(e, A.BoolLit):
            return Val("imm", 1 if e.value else 0)
        if isinstance(e, A.StrLit):
            r = self.alloc(hint)
            self.lea(r, uav(e.value))
            return self.temp(r)
        if isinstance(e, A.Name):
            if e.kind == "local":
                home = self.home[e.local]
                return Val(home.kind, home.x)
            return self.global_value(e, hint)
        if isinstance(e, A.Unary):
            v = self.load(self.expr(e.operand, hint), hint)
            self.a({"-": f"neg {v.x}", "~": f"not {v.x}", "not": f"xor {v.x}, 1"}[e.op])
            return v
        if isinstance(e, A.Binary):
            return self.binary(e, hint)
        if isinstance(e, A.Index):
            return self.index(e, hint)
        if isinstance(e, A.Call):
            return self.builtin(e, hint) if e.builtin else self.user_call(e, hint)
        raise AssertionError(f"cannot generate code for {type(e).__name__}")

    def binary(self, e: A.Binary, hint: str | None) -> Val:
        if e.op in ("and", "or") or e.op in CC:
            return self.boolean(e, hint)
        lhs = self.expr(e.lhs, hint)
        rhs = self.expr(e.rhs)
        return self.binop(e.op, lhs, rhs, e.span, hint=hint)

    def boolean(self, e: A.Binary, hint: str | None) -> Val:
        """A condition's value as 0 or 1."""
        if e.op in CC and e.lhs.ty == STR:
            v = self.call(lazy("toy.rt.streq"), [e.lhs, e.rhs], hint)
            if e.op == "!=":
                self.a(f"xor {low32(v.x)}, 1")
            return v
        if e.op in CC:
            cc = self.compare(e)
            r = self.alloc(hint)
            self.a(f"set{cc} {low8(r)}", f"movzx {low32(r)}, {low8(r)}")
            return self.temp(r)
        # Whatever is in a scratch register must stay where it is on both paths: it goes to
        # its spill slot first (a call, or a spill for want of registers, on one path only
        # would leave it in different places).
        self.spill_all()
        false, done = self.label(), self.label()
        self.jump_if(e, false, False)
        r = self.alloc(hint)
        self.a(f"mov {low32(r)}, 1", f"jmp {done}", f"{false}:", f"xor {low32(r)}, {low32(r)}",
               f"{done}:")
        return self.temp(r)

    def binop(self, op: str, lhs: Val, rhs: Val, span: Span, hint: str | None = None,
              in_place: bool = False) -> Val:
        """lhs op rhs, for the int operators; consumes both. `in_place`: lhs is a local's
        register, which may be written."""
        a = self.a
        if lhs.kind == rhs.kind == "imm" and not (op in ("/", "%") and rhs.x == 0):
            # (operands that became constants here, such as `x % 1`, which the folding of
            # the tree could not see)
            return Val("imm", int_binary(op, lhs.x, rhs.x))
        if op in ("/", "%"):
            return self.divide(op, lhs, rhs, span, hint)
        if op in SHIFT:
            return self.shift(op, lhs, rhs, hint, in_place)
        if op in COMMUTES and not in_place and (
                (rhs.kind == "reg" and rhs.temp and not (lhs.kind == "reg" and lhs.temp))
                or (lhs.kind == "imm" and rhs.kind != "imm")
                or (rhs.kind == "reg" and rhs.temp and rhs.x == hint != lhs.x)):
            lhs, rhs = rhs, lhs
        if rhs.kind == "imm" and not _imm32(rhs.x):
            lhs.pins += 1
            self.load(rhs)
            lhs.pins -= 1
        writable = in_place or (lhs.kind == "reg" and lhs.temp)
        if op == "*":
            if rhs.kind == "imm":
                k = power_of_two(rhs.x)
                if k and writable:
                    a(f"shl {lhs.x}, {k}")
                    return lhs
                if k and lhs.kind == "reg" and k <= 3:  # a copy that shifts, in one step
                    r = self.alloc(hint)
                    a(f"lea {r}, [{lhs.x} + {lhs.x}]" if k == 1 else f"lea {r}, [{lhs.x}*{1 << k}]")
                    return self.temp(r)
                if rhs.x in LEA_SCALE and lhs.kind == "reg":
                    r = lhs.x if writable else self.alloc(hint)
                    a(f"lea {r}, [{lhs.x} + {lhs.x}*{LEA_SCALE[rhs.x]}]")
                    return lhs if writable else self.temp(r)
                if not writable:
                    r = self.alloc_beside(lhs, hint=hint)
                    a(f"imul {r}, {self.src(lhs)}, {rhs.x}")
                    self.free(lhs)
                    return self.temp(r)
                a(f"imul {lhs.x}, {lhs.x}, {rhs.x}")
                return lhs
            return self.two_operand("imul", lhs, rhs, hint, writable)
        if op in ("+", "-") and not writable and lhs.kind == "reg":
            # lea computes the sum into a new register without touching the local's
            if rhs.kind == "imm":
                disp = rhs.x if op == "+" else -rhs.x
                if _imm32(disp):
                    r = self.alloc(hint)
                    a(f"lea {r}, [{lhs.x} {'-' if disp < 0 else '+'} {abs(disp)}]")
                    return self.temp(r)
            elif rhs.kind == "reg" and op == "+":
                r = self.alloc_beside(rhs, hint=hint)
                a(f"lea {r}, [{lhs.x} + {rhs.x}]")
                self.free(rhs)
                return self.temp(r)
        return self.two_operand(ARITH[op], lhs, rhs, hint, writable)

    def two_operand(self, mnemonic: str, lhs: Val, rhs: Val, hint: str | None,
                    writable: bool) -> Val:
        """lhs = lhs OP rhs, in lhs's register (a copy of it unless `writable`)."""
        rhs.pins += 1
        if not writable:
            self.load(lhs, hint)
        self.a(f"{mnemonic} {lhs.x}, {self.src(rhs)}")
        rhs.pins -= 1
        self.free(rhs)
        return lhs

    def shift(self, op: str, lhs: Val, rhs: Val, hint: str | None, in_place: bool) -> Val:
        writable = in_place or (lhs.kind == "reg" and lhs.temp)
        if rhs.kind == "imm":
            if not writable:
                self.load(lhs, hint)
            if rhs.x & 63:
                self.a(f"{SHIFT[op]} {lhs.x}, {rhs.x & 63}")
            return lhs
        # the count goes in cl; the hardware takes it mod 64, as Toy does
        lhs.pins += 1
        if rhs.kind == "reg" and rhs.temp and rhs.x == "rcx":
            self.busy["rcx"] = None  # the count is where it must be
        else:
            rhs.pins += 1
            self.take("rcx")
            self.a(f"mov rcx, {self.src(rhs)}")
            rhs.pins -= 1
            self.free(rhs)
        if not writable:
            self.load(lhs, hint)
        self.a(f"{SHIFT[op]} {lhs.x}, cl")
        lhs.pins -= 1
        self.release("rcx")
        return lhs

    def divide(self, op: str, lhs: Val, rhs: Val, span: Span, hint: str | None) -> Val:
        a = self.a
        if rhs.kind == "imm":
            d = rhs.x
            if d == 0:
                a(f"jmp {self.panic_label('division by zero', span)}")
                self.free(lhs)
                return Val("imm", 0)
            if d in (1, -1):
                if op == "%":
                    self.free(lhs)
                    return Val("imm", 0)
                if d == 1:
                    return lhs
                self.load(lhs, hint)
                a(f"neg {lhs.x}")
                return lhs
            k = power_of_two(abs(d))
            if k:
                return self.divide_power(op, lhs, k, d < 0, hint)
            if abs(d) < 1 << 62:
                return self.divide_magic(op, lhs, d, hint)
        return self.divide_hardware(op, lhs, rhs, span)

    def divide_power(self, op: str, x: Val, k: int, negative: bool, hint: str | None) -> Val:
        """x / 2**k or x % 2**k, rounding toward zero: a negative x gets 2**k - 1 added
        before the shift (chosen with cmov, keeping the dependency chain short)."""
        a = self.a
        x.pins += 1
        if x.kind != "reg":
            self.load(x)
        r = self.alloc(hint)
        mask = (1 << k) - 1
        if k == 1:  # the sign bit is the bias
            a(f"mov {r}, {x.x}", f"shr {r}, 63", f"add {r}, {x.x}")
        elif _imm32(mask):
            a(f"lea {r}, [{x.x} + {mask}]", f"test {x.x}, {x.x}", f"cmovns {r}, {x.x}")
        else:
            a(f"mov {r}, {x.x}", f"sar {r}, 63", f"shr {r}, {64 - k}", f"add {r}, {x.x}")
        if op == "/":
            a(f"sar {r}, {k}")
            if negative:
                a(f"neg {r}")
            x.pins -= 1
            self.free(x)
            return self.temp(r)
        # x - (x rounded toward zero to a multiple of 2**k)
        if _imm32(-(1 << k)):
            a(f"and {r}, {-(1 << k)}")
        else:
            a(f"shr {r}, {k}", f"shl {r}, {k}")
        rest = self.temp(r)
        rest.pins += 1
        out = self.alloc()
        a(f"mov {out}, {x.x}", f"sub {out}, {r}")
        rest.pins -= 1
        self.free(rest)
        x.pins -= 1
        self.free(x)
        return self.temp(out)

    def divide_magic(self, op: str, x: Val, d: int, hint: str | None) -> Val:
        """x / d as the high half of a product (`toyc.divconst`); x % d as x - (x / d) * d.
        The product is in rdx:rax, so x must be elsewhere."""
        a = self.a
        m, s = magic(abs(d))
        x.pins += 1
        if x.kind == "imm":
            r = self.alloc(avoid=("rax", "rdx"))
            self.mov_imm(r, x.x)
            x.kind, x.x, x.temp = "reg", r, True
            self.busy[r] = x
        elif x.kind == "reg" and x.x in ("rax", "rdx"):
            self.move_out(x, ("rax", "rdx"))
        self.take("rax")
        self.take("rdx")
        operand = self.src(x)
        a(f"movabs rax, {m & ((1 << 64) - 1):#x}", f"imul {operand}")
        if m < 0:
            a(f"add rdx, {operand}")
        if s:
            a(f"sar rdx, {s}")
        a(f"mov rax, {operand}", "shr rax, 63", "add rdx, rax")
        if d < 0:
            a("neg rdx")
        if op == "%":
            if _imm32(d):
                a(f"imul rdx, rdx, {d}")
            else:
                a(f"movabs rax, {d & ((1 << 64) - 1):#x}", "imul rdx, rax")
            a(f"mov rax, {operand}", "sub rax, rdx")
        x.pins -= 1
        self.free(x)
        return self.one_of_rax_rdx("rdx" if op == "/" else "rax")

    def divide_hardware(self, op: str, lhs: Val, rhs: Val, span: Span) -> Val:
        """idiv, after checking for zero; -1 takes its own path, since idiv traps on
        INT_MIN / -1 where Toy wraps."""
        a = self.a
        rhs.pins += 1
        if lhs.kind == "reg" and lhs.temp and lhs.x == "rax":
            self.busy["rax"] = None
            lhs.temp = False
        else:
            lhs.pins += 1
            self.take("rax")
            lhs.pins -= 1
            self.store(Val("reg", "rax"), lhs)
            self.free(lhs)
        self.take("rdx")
        if rhs.kind == "imm":
            self.load(rhs)
        divisor = self.src(rhs)
        if rhs.kind == "reg":
            a(f"test {divisor}, {divisor}")
        else:
            a(f"cmp {divisor}, 0")
        a(f"je {self.panic_label('division by zero', span)}")
        minus, back = self.label(), self.label()
        a(f"cmp {divisor}, -1", f"je {minus}", "cqo", f"idiv {divisor}", f"{back}:")
        self.cold_code.append([f"{minus}:", "neg rax" if op == "/" else "xor edx, edx",
                               f"jmp {back}"])
        rhs.pins -= 1
        self.free(rhs)
        return self.one_of_rax_rdx("rax" if op == "/" else "rdx")

    def one_of_rax_rdx(self, result: str) -> Val:
        """After a divide that took rax and rdx: `result` holds the value, the other is free."""
        self.release("rdx" if result == "rax" else "rax")
        del self.busy[result]
        return self.temp(result)

    def index(self, e: A.Index, hint: str | None) -> Val:
        if e.base.ty == STR:
            base = self.expr(e.base)
            index = self.expr(e.index)
            base.pins += 1
            b = self.in_reg(base)
            index.pins += 1
            oob = self.panic_label("index out of bounds", e.span)
            if index.kind == "imm" and _imm32(index.x):
                self.a(f"cmp qword ptr [{b} - 8], {index.x}", f"jbe {oob}")
            else:
                i = self.in_reg(index)
                self.a(f"cmp {i}, qword ptr [{b} - 8]", f"jae {oob}")
            r = self.alloc(hint)
            self.a(f"movzx {low32(r)}, byte ptr [{b} + {index.x}]")
            base.pins -= 1
            index.pins -= 1
            self.free(base)
            self.free(index)
            return self.temp(r)
        index = self.expr(e.index)
        self.check_index(index, e.base.ty.length, e.span)
        is_bool = e.ty == BOOL
        out: list[str] = []

        def load(at: str) -> None:
            r = self.alloc(hint)
            self.a(f"movzx {low32(r)}, byte ptr {at}" if is_bool else f"mov {r}, qword ptr {at}")
            out.append(r)

        self.element_at(e, index, load)
        self.free(index)
        return self.temp(out[0])

    # ---- calls --------------------------------------------------------------------------------

    def call(self, target: Target, args: list[A.Expr], hint: str | None = None,
             result: bool = True, variadic: bool = False) -> Val | None:
        """Call `target` with `args`: the first six in the argument registers, the rest (an
        extern's) pushed on the stack, the last first; its result in a scratch register (rax
        unless `hint` is free). `variadic`: `al` says how many vector registers hold
        arguments, none."""
        vals = []
        for i, x in enumerate(args):
            vals.append(self.expr(x, ARG_REGS[i] if i < len(ARG_REGS) else None))
        on_stack = vals[len(ARG_REGS):]
        for v in on_stack:
            if v.kind == "imm" and not _imm32(v.x):
                self.load(v)  # (`push` takes a 32-bit immediate only)
        self.spill_all(keep=tuple(vals))
        # Every argument is computed before the first push: a call among them must find rsp
        # as the frame keeps it, 16-byte aligned. Nothing between the pushes and the call
        # uses rsp (slots are reached from rbp), and rbp-based call frame information holds.
        pad = 8 * (len(on_stack) & 1)  # rsp is 16-byte aligned again at the call
        if pad:
            self.a(f"sub rsp, {pad}")
        for v in reversed(on_stack):
            self.a(f"push {'qword ptr ' if v.kind == 'mem' else ''}{v.x}")
        self.parallel_move([(Val("reg", ARG_REGS[i]), v)
                            for i, v in enumerate(vals[: len(ARG_REGS)])])
        for v in vals:
            self.free(v)
        assert not self.busy, self.busy
        if variadic:
            self.a("xor eax, eax")  # after the moves, which may read rax
        self.a.reloc("call 0", target, R_X86_64_PLT32, -4)
        if on_stack:
            self.a(f"add rsp, {8 * len(on_stack) + pad}")
        if not result:
            return None
        return self.temp("rax")

    def user_call(self, e: A.Call, hint: str | None) -> Val | None:
        d = self.program.by_name.get(e.callee.name) if self.program is not None else None
        v = self.call(nav(e.callee.name), e.args, hint, e.ty != VOID,
                      variadic=d is not None and d.variadic)
        if e.ty == BOOL and self.calls_c(e.callee.name):
            # The ABI defines only the low byte of a `bool` result (gcc's `setg al` leaves
            # the rest of rax as it was); Toy tests the whole register.
            self.a("movzx eax, al")
        return v

    def calls_c(self, name: str) -> bool:
        """Whether `name` is an extern fn, which C may define (without the program: maybe)."""
        d = self.program.by_name.get(name) if self.program is not None else None
        return d is None or d.is_extern

    def builtin(self, e: A.Call, hint: str | None) -> Val | None:
        a = self.a
        name = e.callee.name
        args = e.args
        if name in ("print", "eprint"):
            self.print(e)
            return None
        if name == "len":
            x = args[0]
            if x.ty != STR:
                return Val("imm", x.ty.length)
            v = self.expr(x)
            v.pins += 1
            b = self.in_reg(v)
            r = self.alloc(hint)
            a(f"mov {r}, qword ptr [{b} - 8]")
            v.pins -= 1
            self.free(v)
            return self.temp(r)
        if name == "exit":  # through the runtime, which runs C's destructors first
            self.call(lazy(EXIT), args, result=False)
            return None
        if name == "assert":
            self.jump_if(args[0], self.panic_label("assertion failed", e.span), False)
            return None
        if name == "argc":
            r = self.alloc(hint)
            a.reloc(f"mov {r}, qword ptr [rip]", lazy("toy.rt.argc"), R_X86_64_PC32, -4)
            return self.temp(r)
        if name in ("argv", "parse_int"):
            v = self.call(lazy(f"toy.rt.{name}"), args)
            # The helper returns a failure flag in rdx; the panic names this call.
            message = "index out of bounds" if name == "argv" else "invalid integer"
            a("test edx, edx", f"jne {self.panic_label(message, e.span)}")
            return v
        if name == "sleep_ms":
            return self.call(lazy("toy.rt.sleep_ms"), args, result=False)
        if name == "clock_ns":
            return self.call(lazy("toy.rt.clock_ns"), [], hint)
        if name == "spawn":
            # The function's address comes from a relocation to its nav, as a call's target
            # does, so the linker keeps it right when the function moves.
            v = self.expr(args[1], "rsi")
            self.spill_all(keep=(v,))
            self.store(Val("reg", "rsi"), v)
            self.free(v)
            self.lea("rdi", nav(args[0].name))
            a.reloc("call 0", lazy("toy.rt.spawn"), R_X86_64_PLT32, -4)
            return self.temp("rax")
        if name == "join":
            return self.call(lazy("toy.rt.join"), args, hint)
        raise AssertionError(f"built-in {name} has no code generator")

    def print(self, e: A.Call) -> None:
        """The values go in consecutive spill slots, the last argument lowest, which the
        runtime reads as an array."""
        args = e.args
        kinds = b"".join(PRINT_KIND[x.ty.name] for x in args)
        first = self.spill_count
        self.spill_count += len(args)
        for i, x in enumerate(args):
            v = self.expr(x)
            self.store(Val("mem", self.slot_text(first + i)), v)
            self.free(v)
        self.spill_all()
        fd = 1 if e.callee.name == "print" else 2
        a = self.a
        a(f"mov edi, {fd}")
        if args:
            a(f"lea rsi, {self.slot_text(first + len(args) - 1)}")
        else:
            a("xor esi, esi")
        a(f"mov edx, {len(args)}")
        self.lea("rcx", uav(kinds))
        a.reloc("call 0", lazy("toy.rt.print"), R_X86_64_PLT32, -4)
        self.free_slots += range(first, first + len(args))


def lower_function(fn: A.FnDecl, path: str, program=None) -> Code:
    return FunctionGen(fn, path, program).lower()
