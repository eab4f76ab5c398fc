"""Lowering one checked Toy function to AArch64 assembly (AAPCS64).

A plain stack machine walked by toyc's `FunctionLowering`: every expression leaves its value in
x0, a binary operator keeps its left operand on the stack (16 bytes a push, as sp must stay
16-byte aligned) while the right one is computed, and every local lives in a slot below the
frame pointer x29. x9-x11 are scratch within one construct; nothing is live in a register across
a call. A call's arguments are pushed and popped into x0-x7, or, for an extern with more than
eight, stored in a room below sp that holds the ninth and later where AAPCS64 wants them (a
variadic extern's are passed as fixed ones: so Linux has it). Panics branch to cold stubs after
the function's return, which call the runtime's panic routine with the message, the file name,
a line field (a literal after the code, see `assembler.py`) and the column.

Toy's arithmetic maps onto AArch64 directly: `sdiv` wraps INT_MIN / -1 instead of trapping and
`lslv`/`asrv` take the shift count mod 64, as Toy requires; only division by zero, which `sdiv`
answers with 0, needs a check.
"""

from __future__ import annotations

from toyc import ast as A
from toyc.code import Code, lazy, nav, uav
from toyc.lowering import RETURN_LABEL, FunctionLowering, slot_size
from toyc.source import Span
from toyc.types import BOOL, INT, STR, VOID, Type

from .assembler import Asm
from .relocs import R_AARCH64_TLSLE_ADD_TPREL_HI12, R_AARCH64_TLSLE_ADD_TPREL_LO12_NC

FUNCTION_ALIGN = 16
ARG_REGS = ("x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7")
COND = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
INVERSE = {"eq": "ne", "ne": "eq", "lt": "ge", "ge": "lt", "le": "gt", "gt": "le"}
ARITH = {"+": "add", "-": "sub", "&": "and", "|": "orr", "^": "eor", "*": "mul",
         "<<": "lsl", ">>": "asr"}
PRINT_KIND = {"int": b"i", "bool": b"b", "str": b"s"}
SYS_EXIT_GROUP = 94
UNSCALED_REACH = 256  # ldur/stur reach [x29, #-256]


def _round16(n: int) -> int:
    return (n + 15) & ~15


def mov_imm(a: Asm, reg: str, v: int) -> None:
    """`reg` = the 64-bit value `v`, with movz/movn and as few movk as it takes."""
    if -0x10000 <= v < 0:
        a(f"movn {reg}, #{~v & 0xFFFF}")
        return
    u = v & ((1 << 64) - 1)
    parts = [(u >> shift) & 0xFFFF for shift in (0, 16, 32, 48)]
    first = next((i for i, p in enumerate(parts) if p), 0)
    a(f"movz {reg}, #{parts[first]}, lsl #{16 * first}")
    for i in range(first + 1, 4):
        if parts[i]:
            a(f"movk {reg}, #{parts[i]}, lsl #{16 * i}")


class FunctionGen(FunctionLowering):
    def __init__(self, fn: A.FnDecl, path: str, program=None):
        super().__init__(fn, path)
        self.a = Asm()
        self.program = program  # to tell a call of an extern from a call of a Toy function

    # ---- function -----------------------------------------------------------------------------

    def lower(self) -> Code:
        a = self.a
        self.mark_entry()
        a("stp x29, x30, [sp, #-16]!", "mov x29, sp")
        if self.frame:
            if self.frame < 4096:
                a(f"sub sp, sp, #{self.frame}")
            else:
                mov_imm(a, "x9", self.frame)
                a("sub sp, sp, x9")
        for i, _ in enumerate(self.fn.params):
            if self.fn.exports and self.fn.param_types[i] == BOOL:
                # C may call an exported function, and AAPCS64 leaves the bits of a `bool`
                # argument above the lowest byte unspecified.
                a(f"and {ARG_REGS[i]}, {ARG_REGS[i]}, #0xff")
            self.store_local(ARG_REGS[i], i)
        self.block(self.fn.body)
        self.place(RETURN_LABEL)
        self.mark_exit()
        if self.fn.name == "main" and self.fn.result_type == VOID:
            a("mov x0, #0")
        a("mov sp, x29", "ldp x29, x30, [sp], #16", "ret")
        for label, message, span in self.cold:
            a(f"{label}:")
            self.mark(span.line, span.col)
            a.address("x0", uav(message))
            a.address("x1", uav(self.path.encode()))
            a.line_field("x2", span.line, span.line - self.fn.span.line)
            mov_imm(a, "x3", span.col)
            a.call(lazy("toy.rt.panic"))
        return self.finish(a.assemble(FUNCTION_ALIGN))

    # ---- small helpers ------------------------------------------------------------------------

    def push(self, reg: str = "x0") -> None:
        self.a(f"str {reg}, [sp, #-16]!")

    def pop(self, reg: str) -> None:
        self.a(f"ldr {reg}, [sp], #16")

    def frame_address(self, reg: str, below: int) -> None:
        """`reg` = x29 - `below`."""
        if below < 4096:
            self.a(f"sub {reg}, x29, #{below}")
        else:
            mov_imm(self.a, reg, below)
            self.a(f"sub {reg}, x29, {reg}")

    def load_local(self, reg: str, index: int) -> None:
        below = self.slots[index]
        if below <= UNSCALED_REACH:
            self.a(f"ldur {reg}, [x29, #-{below}]")
        else:
            self.frame_address("x9", below)
            self.a(f"ldr {reg}, [x9]")

    def store_local(self, reg: str, index: int) -> None:
        below = self.slots[index]
        if below <= UNSCALED_REACH:
            self.a(f"stur {reg}, [x29, #-{below}]")
        else:
            self.frame_address("x9", below)
            self.a(f"str {reg}, [x9]")

    def tls_address(self, reg: str, name: str) -> None:
        """`reg` = the address of this thread's copy of thread-local `name`: the thread
        pointer plus the variable's offset from it (local exec), added in two 12-bit parts."""
        self.a(f"mrs {reg}, tpidr_el0")
        self.a.reloc(f"add {reg}, {reg}, #0, lsl #12", nav(name), R_AARCH64_TLSLE_ADD_TPREL_HI12)
        self.a.reloc(f"add {reg}, {reg}, #0", nav(name), R_AARCH64_TLSLE_ADD_TPREL_LO12_NC)

    def global_address(self, reg: str, name: str, tls: bool) -> None:
        if tls:
            self.tls_address(reg, name)
        else:
            self.a.address(reg, nav(name))

    def load_global(self, name: str, ty: Type, tls: bool = False) -> None:
        self.global_address("x9", name, tls)
        self.a("ldrb w0, [x9]" if ty == BOOL else "ldr x0, [x9]")

    def store_global(self, name: str, ty: Type, tls: bool = False) -> None:
        self.global_address("x9", name, tls)
        self.a("strb w0, [x9]" if ty == BOOL else "str x0, [x9]")

    def compare_imm(self, reg: str, v: int) -> None:
        """Set the flags for `reg` - `v`."""
        if 0 <= v < 4096:
            self.a(f"cmp {reg}, #{v}")
        elif -4096 < v < 0:
            self.a(f"cmn {reg}, #{-v}")
        else:
            mov_imm(self.a, "x10", v)
            self.a(f"cmp {reg}, x10")

    # ---- statements ---------------------------------------------------------------------------

    def place(self, label: str) -> None:
        self.a(f"{label}:")

    def jump(self, label: str) -> None:
        self.a(f"b {label}")

    def branch_false(self, cond: A.Expr, label: str) -> None:
        """Branch to `label` when `cond` is false; compare-and-branch without a 0/1 between."""
        if isinstance(cond, A.Binary) and cond.op in COND and cond.lhs.ty == INT:
            self.compare(cond)
            self.a(f"b.{INVERSE[COND[cond.op]]} {label}")
            return
        self.expr(cond)
        self.a(f"cbz x0, {label}")

    def let(self, s: A.Let) -> None:
        ty = self.fn.locals[s.local].ty
        below = self.slots[s.local]
        if ty.is_array:
            self.zero_fill(below, slot_size(ty) // 8)
            if isinstance(s.init, A.ArrayLit):
                esize = ty.elem.size
                for i, x in enumerate(s.init.elems):
                    self.expr(x)
                    self.frame_address("x9", below - esize * i)
                    self.a("str x0, [x9]" if esize == 8 else "strb w0, [x9]")
            return
        if s.init is not None:
            self.expr(s.init)
        elif ty == STR:
            self.a.address("x0", uav(b""))
        else:
            self.a("mov x0, #0")
        self.store_local("x0", s.local)

    def zero_fill(self, below: int, qwords: int) -> None:
        top = self.label()
        self.frame_address("x9", below)
        mov_imm(self.a, "x10", qwords)
        self.a(f"{top}:", "str xzr, [x9], #8", "subs x10, x10, #1", f"b.ne {top}")

    def assign(self, s: A.Assign) -> None:
        t = s.target
        op = s.op[:-1]  # "+=" -> "+", "=" -> ""
        if isinstance(t, A.Name):
            self.expr(s.value)
            if t.kind == "local":
                if op:
                    self.a("mov x1, x0")
                    self.load_local("x0", t.local)
                    self.int_op(op, s.span)
                self.store_local("x0", t.local)
            else:
                if op:
                    self.a("mov x1, x0")
                    self.load_global(t.name, t.ty, t.kind == "tls")
                    self.int_op(op, s.span)
                self.store_global(t.name, t.ty, t.kind == "tls")
            return
        # an array element
        self.element_address(t)
        self.push()
        self.expr(s.value)
        if not op:
            self.pop("x2")
            self.a("strb w0, [x2]" if t.ty == BOOL else "str x0, [x2]")
            return
        self.a("mov x1, x0", "ldr x2, [sp]", "ldr x0, [x2]")
        self.int_op(op, s.span)
        self.pop("x2")
        self.a("str x0, [x2]")

    # ---- expressions --------------------------------------------------------------------------

    def int_lit(self, e: A.IntLit) -> None:
        mov_imm(self.a, "x0", e.value)

    def bool_lit(self, e: A.BoolLit) -> None:
        self.a(f"mov x0, #{int(e.value)}")

    def str_lit(self, e: A.StrLit) -> None:
        self.a.address("x0", uav(e.value))

    def name(self, e: A.Name) -> None:
        if e.kind == "local":
            self.load_local("x0", e.local)
        else:
            self.load_global(e.name, e.ty, e.kind == "tls")

    def unary(self, e: A.Unary) -> None:
        self.expr(e.operand)
        self.a({"-": "neg x0, x0", "~": "mvn x0, x0", "not": "eor x0, x0, #1"}[e.op])

    def binary(self, e: A.Binary) -> None:
        a = self.a
        if e.op in ("and", "or"):
            end = self.label()
            self.expr(e.lhs)
            a(f"{'cbz' if e.op == 'and' else 'cbnz'} x0, {end}")
            self.expr(e.rhs)
            a(f"{end}:")
            return
        if e.lhs.ty == STR:
            self.expr(e.lhs)
            self.push()
            self.expr(e.rhs)
            a("mov x1, x0")
            self.pop("x0")
            a.call(lazy("toy.rt.streq"))
            if e.op == "!=":
                a("eor x0, x0, #1")
            return
        if e.op in COND:
            self.compare(e)
            a(f"cset x0, {COND[e.op]}")
            return
        self.operands(e)
        self.int_op(e.op, e.span)

    def compare(self, e: A.Binary) -> None:
        """Set the flags for comparing two ints."""
        if isinstance(e.rhs, A.IntLit):
            self.expr(e.lhs)
            self.compare_imm("x0", e.rhs.value)
            return
        self.operands(e)
        self.a("cmp x0, x1")

    def operands(self, e: A.Binary) -> None:
        """Left operand in x0, right operand in x1."""
        rhs = e.rhs
        if isinstance(rhs, A.IntLit):
            self.expr(e.lhs)
            mov_imm(self.a, "x1", rhs.value)
        elif isinstance(rhs, A.Name) and rhs.kind == "local":
            self.expr(e.lhs)
            self.load_local("x1", rhs.local)
        else:
            self.expr(e.lhs)
            self.push()
            self.expr(rhs)
            self.a("mov x1, x0")
            self.pop("x0")

    def int_op(self, op: str, span: Span) -> None:
        """x0 = x0 op x1, for the int operators."""
        a = self.a
        if op in ARITH:
            a(f"{ARITH[op]} x0, x0, x1")
        elif op in ("/", "%"):
            a(f"cbz x1, {self.panic_label('division by zero', span)}")
            if op == "/":
                a("sdiv x0, x0, x1")
            else:
                a("sdiv x10, x0, x1", "msub x0, x10, x1, x0")
        else:
            raise AssertionError(op)

    def element_address(self, e: A.Index) -> None:
        """x0 = the address of array element `e`, after the bounds check."""
        base = e.base
        self.expr(e.index)
        oob = self.panic_label("index out of bounds", e.span)
        self.compare_imm("x0", base.ty.length)
        self.a(f"b.hs {oob}")
        if base.kind == "local":
            self.frame_address("x1", self.slots[base.local])
        else:
            self.global_address("x1", base.name, base.kind == "tls")
        self.a("add x0, x1, x0, lsl #3" if base.ty.elem.size == 8 else "add x0, x1, x0")

    def index(self, e: A.Index) -> None:
        if e.base.ty == STR:
            self.expr(e.base)
            self.push()
            self.expr(e.index)
            self.a("mov x1, x0")
            self.pop("x0")
            oob = self.panic_label("index out of bounds", e.span)
            self.a("ldur x2, [x0, #-8]", "cmp x1, x2", f"b.hs {oob}", "ldrb w0, [x0, x1]")
            return
        self.element_address(e)
        self.a("ldrb w0, [x0]" if e.ty == BOOL else "ldr x0, [x0]")

    def user_call(self, e: A.Call) -> None:
        # (AAPCS64 on Linux passes a variadic function's arguments as it passes fixed ones.)
        if len(e.args) > len(ARG_REGS):
            self.stack_call(e)
        else:
            for arg in e.args:
                self.expr(arg)
                self.push()
            for reg in reversed(ARG_REGS[: len(e.args)]):
                self.pop(reg)
            self.a.call(nav(e.callee.name))
        d = self.program.by_name.get(e.callee.name) if self.program is not None else None
        if e.ty == BOOL and (d is None or d.is_extern):
            # a C `bool` result: AAPCS64 leaves the bits above the lowest byte unspecified
            self.a("and x0, x0, #0xff")

    def stack_call(self, e: A.Call) -> None:
        """A call of an extern with more than eight arguments: the ninth and later go on the
        stack, 8 bytes each from sp up at the call. Each value is stored in a room below the
        frame as soon as it is computed (a call among them has sp 16 bytes aligned below
        the room): the stack arguments at its bottom, the first eight above them, which are
        loaded into x0-x7 last."""
        a = self.a
        stack = _round16(8 * (len(e.args) - len(ARG_REGS)))
        room = stack + 8 * len(ARG_REGS)
        self.sp_adjust("sub", room)
        for i, arg in enumerate(e.args):
            self.expr(arg)
            at = 8 * (i - len(ARG_REGS)) if i >= len(ARG_REGS) else stack + 8 * i
            a(f"str x0, {self.sp_slot(at)}")
        for i, reg in enumerate(ARG_REGS):
            a(f"ldr {reg}, {self.sp_slot(stack + 8 * i)}")
        a.call(nav(e.callee.name))
        self.sp_adjust("add", room)

    def sp_adjust(self, op: str, n: int) -> None:
        """sp = sp `op` n ("add" or "sub"), for a multiple of 16."""
        if n < 4096:
            self.a(f"{op} sp, sp, #{n}")
        else:
            mov_imm(self.a, "x9", n)
            self.a(f"{op} sp, sp, x9")

    def sp_slot(self, at: int) -> str:
        """The memory operand of the 8 bytes at sp + `at` (x10 may hold the address)."""
        if at <= 32760:  # (the reach of a scaled 12-bit offset)
            return f"[sp, #{at}]"
        mov_imm(self.a, "x10", at)
        self.a("add x10, sp, x10")
        return "[x10]"

    def builtin(self, e: A.Call) -> None:
        a = self.a
        name = e.callee.name
        args = e.args
        if name in ("print", "eprint"):
            # The values go to an array on the stack, value i at [sp + 8*i].
            room = _round16(8 * len(args))
            if room:
                a(f"sub sp, sp, #{room}")
            for i, x in enumerate(args):
                self.expr(x)
                a(f"str x0, [sp, #{8 * i}]")
            a(f"mov x0, #{1 if name == 'print' else 2}", "mov x1, sp", f"mov x2, #{len(args)}")
            a.address("x3", uav(b"".join(PRINT_KIND[x.ty.name] for x in args)))
            a.call(lazy("toy.rt.print"))
            if room:
                a(f"add sp, sp, #{room}")
        elif name == "len":
            x = args[0]
            if x.ty == STR:
                self.expr(x)
                a("ldur x0, [x0, #-8]")
            else:
                mov_imm(a, "x0", x.ty.length)
        elif name == "exit":
            self.expr(args[0])
            a(f"mov x8, #{SYS_EXIT_GROUP}", "svc #0")
        elif name == "assert":
            self.expr(args[0])
            a(f"cbz x0, {self.panic_label('assertion failed', e.span)}")
        elif name == "argc":
            a.address("x9", lazy("toy.rt.argc"))
            a("ldr x0, [x9]")
        elif name in ("argv", "parse_int"):
            self.expr(args[0])
            a.call(lazy(f"toy.rt.{name}"))
            # The helper returns a failure flag in x1; the panic names this call.
            message = "index out of bounds" if name == "argv" else "invalid integer"
            a(f"cbnz x1, {self.panic_label(message, e.span)}")
        elif name in ("sleep_ms", "join"):
            self.expr(args[0])
            a.call(lazy(f"toy.rt.{name}"))
        elif name == "clock_ns":
            a.call(lazy("toy.rt.clock_ns"))
        elif name == "spawn":
            # The function's address comes from a relocation to its nav, as a call's target
            # does, so the linker keeps it right when the function moves.
            self.expr(args[1])
            a("mov x1, x0")
            a.address("x0", nav(args[0].name))
            a.call(lazy("toy.rt.spawn"))
        else:
            raise AssertionError(f"built-in {name} has no code generator")


def lower_function(fn: A.FnDecl, path: str, program=None) -> Code:
    return FunctionGen(fn, path, program).lower()
