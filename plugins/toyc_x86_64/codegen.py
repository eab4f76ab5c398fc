"""Lowering one checked Toy function to x86_64 assembly (System V AMD64 ABI).

The generated code is a plain stack machine, in the manner of chibicc: every expression leaves
its value in rax, a binary operator pushes its left operand while the right one is computed,
every local lives in a stack slot below rbp (the walk over the function is toyc's
`FunctionLowering`; the instructions are this module's). Panics jump to cold stubs after the
function's return, which call the runtime's panic routine with a message, the file name, the
line and the column. The line is a 64-bit immediate operand the linker writes (a line field, see
`toyc.code`), so that a function that only moved to other lines is not regenerated. The stack is
kept 16-byte aligned at every call, so C functions can be called later on.
"""

from __future__ import annotations

from toyc import ast as A
from toyc.code import Code, Target, lazy, nav, uav
from toyc.layout import STR_HEADER
from toyc.lowering import RETURN_LABEL, FunctionLowering, slot_size
from toyc.source import Span
from toyc.types import BOOL, INT, STR, VOID, Type

from .assembler import Asm
from .relocs import R_X86_64_PC32, R_X86_64_PLT32, R_X86_64_TPOFF32

ARG_REGS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")
SETCC = {"==": "sete", "!=": "setne", "<": "setl", "<=": "setle", ">": "setg", ">=": "setge"}
JUMP_IF_NOT = {"==": "jne", "!=": "je", "<": "jge", "<=": "jg", ">": "jle", ">=": "jl"}
ARITH = {"+": "add", "-": "sub", "&": "and", "|": "or", "^": "xor"}
PRINT_KIND = {"int": b"i", "bool": b"b", "str": b"s"}
FUNCTION_ALIGN = 16

SYS_EXIT_GROUP = 231


def _imm32(v: int) -> bool:
    return -(1 << 31) <= v < (1 << 31)


class FunctionGen(FunctionLowering):
    def __init__(self, fn: A.FnDecl, path: str):
        super().__init__(fn, path)
        self.a = Asm()
        self.depth = 0  # bytes pushed since the frame was set up

    # ---- function -----------------------------------------------------------------------------

    def lower(self) -> Code:
        a = self.a
        self.mark_entry()
        a("push rbp", "mov rbp, rsp")
        if self.frame:
            a(f"sub rsp, {self.frame}")
        for i, _ in enumerate(self.fn.params):
            a(f"mov qword ptr {self.local(i)}, {ARG_REGS[i]}")
        self.block(self.fn.body)
        self.place(RETURN_LABEL)
        self.mark_exit()
        if self.fn.name == "main" and self.fn.result_type == VOID:
            a("xor eax, eax")
        a("leave", "ret")
        for label, message, span in self.cold:
            a(f"{label}:")
            self.mark(span.line, span.col)
            self.lea("rdi", uav(message))
            self.lea("rsi", uav(self.path.encode()))
            a.line_field(f"movabs rdx, {span.line}", span.line - self.fn.span.line)
            a(f"mov ecx, {span.col}")
            a.reloc("call 0", lazy("toy.rt.panic"), R_X86_64_PLT32, -4)
        return self.finish(a.assemble(FUNCTION_ALIGN))

    # ---- small helpers ------------------------------------------------------------------------

    def push(self, reg: str = "rax") -> None:
        self.a(f"push {reg}")
        self.depth += 8

    def pop(self, reg: str) -> None:
        self.a(f"pop {reg}")
        self.depth -= 8

    def lea(self, reg: str, target: Target, addend: int = 0) -> None:
        if target.kind == "uav":
            addend += STR_HEADER
        self.a.reloc(f"lea {reg}, [rip]", target, R_X86_64_PC32, addend - 4)

    def call(self, target: Target) -> None:
        pad = self.depth % 16 != 0
        if pad:
            self.a("sub rsp, 8")
        self.a.reloc("call 0", target, R_X86_64_PLT32, -4)
        if pad:
            self.a("add rsp, 8")

    def mov_imm(self, reg: str, v: int) -> None:
        if v == 0:
            self.a(f"xor {reg}, {reg}")
        elif _imm32(v):
            self.a(f"mov {reg}, {v}")
        else:
            self.a(f"movabs {reg}, {v & ((1 << 64) - 1):#x}")

    def local(self, index: int) -> str:
        return f"[rbp - {self.slots[index]}]"

    def tls_address(self, name: str) -> None:
        """r11 = the address of this thread's copy of thread-local `name`: the thread pointer
        (which %fs:0 holds) plus the variable's offset from it (local exec). Encoded by hand:
        keystone makes %fs:[disp32] RIP-relative and drops a zero displacement."""
        self.a(".byte 0x64, 0x4c, 0x8b, 0x1c, 0x25, 0, 0, 0, 0")  # mov r11, qword ptr fs:[0]
        self.a.reloc(".byte 0x4d, 0x8d, 0x9b, 0, 0, 0, 0", nav(name), R_X86_64_TPOFF32, 0)

    def load_global(self, name: str, ty: Type, tls: bool = False) -> None:
        if tls:
            self.tls_address(name)
            self.a("movzx eax, byte ptr [r11]" if ty == BOOL else "mov rax, qword ptr [r11]")
            return
        if ty == BOOL:
            self.a.reloc("movzx eax, byte ptr [rip]", nav(name), R_X86_64_PC32, -4)
        else:
            self.a.reloc("mov rax, qword ptr [rip]", nav(name), R_X86_64_PC32, -4)

    def store_global(self, name: str, ty: Type, tls: bool = False) -> None:
        if tls:
            self.tls_address(name)
            self.a("mov byte ptr [r11], al" if ty == BOOL else "mov qword ptr [r11], rax")
            return
        if ty == BOOL:
            self.a.reloc("mov byte ptr [rip], al", nav(name), R_X86_64_PC32, -4)
        else:
            self.a.reloc("mov qword ptr [rip], rax", nav(name), R_X86_64_PC32, -4)

    # ---- statements ---------------------------------------------------------------------------

    def place(self, label: str) -> None:
        self.a(f"{label}:")

    def jump(self, label: str) -> None:
        self.a(f"jmp {label}")

    def branch_false(self, cond: A.Expr, label: str) -> None:
        """Jump to `label` when `cond` is false; compare-and-branch without a 0/1 in between."""
        if isinstance(cond, A.Binary) and cond.op in SETCC and cond.lhs.ty == INT:
            self.operands(cond)
            self.a("cmp rax, rcx", f"{JUMP_IF_NOT[cond.op]} {label}")
            return
        self.expr(cond)
        self.a("test rax, rax", f"je {label}")

    def let(self, s: A.Let) -> None:
        below = self.slots[s.local]
        ty = self.fn.locals[s.local].ty
        if ty.is_array:
            qwords = slot_size(ty) // 8
            self.a(f"lea rdi, [rbp - {below}]", f"mov ecx, {qwords}", "xor eax, eax",
                   "rep stosq")
            if isinstance(s.init, A.ArrayLit):
                esize = ty.elem.size
                for i, x in enumerate(s.init.elems):
                    self.expr(x)
                    if esize == 8:
                        self.a(f"mov qword ptr [rbp - {below - 8 * i}], rax")
                    else:
                        self.a(f"mov byte ptr [rbp - {below - i}], al")
            return
        if s.init is not None:
            self.expr(s.init)
        elif ty == STR:
            self.lea("rax", uav(b""))
        else:
            self.a("xor eax, eax")
        self.a(f"mov qword ptr {self.local(s.local)}, rax")

    def assign(self, s: A.Assign) -> None:
        t = s.target
        op = s.op[:-1]  # "+=" -> "+", "=" -> ""
        if isinstance(t, A.Name):
            self.expr(s.value)
            if t.kind == "local":
                if op:
                    self.a("mov rcx, rax", f"mov rax, qword ptr {self.local(t.local)}")
                    self.int_op(op, s.span)
                self.a(f"mov qword ptr {self.local(t.local)}, rax")
            else:
                if op:
                    self.a("mov rcx, rax")
                    self.load_global(t.name, t.ty, t.kind == "tls")
                    self.int_op(op, s.span)
                self.store_global(t.name, t.ty, t.kind == "tls")
            return
        # an array element
        self.element_address(t)
        self.push()
        self.expr(s.value)
        if not op:
            self.pop("rdx")
            if t.ty == BOOL:
                self.a("mov byte ptr [rdx], al")
            else:
                self.a("mov qword ptr [rdx], rax")
            return
        self.a("mov rcx, rax", "mov rax, qword ptr [rsp]", "mov rax, qword ptr [rax]")
        self.int_op(op, s.span)
        self.pop("rdx")
        self.a("mov qword ptr [rdx], rax")

    # ---- expressions --------------------------------------------------------------------------

    def int_lit(self, e: A.IntLit) -> None:
        self.mov_imm("rax", e.value)

    def bool_lit(self, e: A.BoolLit) -> None:
        self.a("mov eax, 1" if e.value else "xor eax, eax")

    def str_lit(self, e: A.StrLit) -> None:
        self.lea("rax", uav(e.value))

    def name(self, e: A.Name) -> None:
        if e.kind == "local":
            self.a(f"mov rax, qword ptr {self.local(e.local)}")
        else:
            self.load_global(e.name, e.ty, e.kind == "tls")

    def unary(self, e: A.Unary) -> None:
        self.expr(e.operand)
        self.a({"-": "neg rax", "~": "not rax", "not": "xor eax, 1"}[e.op])

    def binary(self, e: A.Binary) -> None:
        a = self.a
        if e.op in ("and", "or"):
            end = self.label()
            self.expr(e.lhs)
            a("test rax, rax", f"{'je' if e.op == 'and' else 'jne'} {end}")
            self.expr(e.rhs)
            a(f"{end}:")
            return
        if e.lhs.ty == STR:
            self.expr(e.lhs)
            self.push()
            self.expr(e.rhs)
            a("mov rsi, rax")
            self.pop("rdi")
            self.call(lazy("toy.rt.streq"))
            if e.op == "!=":
                a("xor eax, 1")
            return
        self.operands(e)
        if e.op in SETCC:
            a("cmp rax, rcx", f"{SETCC[e.op]} al", "movzx eax, al")
        else:
            self.int_op(e.op, e.span)

    def operands(self, e: A.Binary) -> None:
        """Left operand in rax, right operand in rcx."""
        rhs = e.rhs
        if isinstance(rhs, A.IntLit) and _imm32(rhs.value):
            self.expr(e.lhs)
            self.a(f"mov rcx, {rhs.value}")
        elif isinstance(rhs, A.Name) and rhs.kind == "local":
            self.expr(e.lhs)
            self.a(f"mov rcx, qword ptr {self.local(rhs.local)}")
        else:
            self.expr(e.lhs)
            self.push()
            self.expr(rhs)
            self.a("mov rcx, rax")
            self.pop("rax")

    def int_op(self, op: str, span: Span) -> None:
        """rax = rax op rcx, for the int operators."""
        a = self.a
        if op in ARITH:
            a(f"{ARITH[op]} rax, rcx")
        elif op == "*":
            a("imul rax, rcx")
        elif op == "<<":
            a("shl rax, cl")
        elif op == ">>":
            a("sar rax, cl")
        elif op in ("/", "%"):
            # idiv traps on INT_MIN / -1; Toy wraps instead, so -1 takes its own path.
            zero = self.panic_label("division by zero", span)
            normal, done = self.label(), self.label()
            a("test rcx, rcx", f"je {zero}", "cmp rcx, -1", f"jne {normal}")
            a("neg rax" if op == "/" else "xor eax, eax")
            a(f"jmp {done}", f"{normal}:", "cqo", "idiv rcx")
            if op == "%":
                a("mov rax, rdx")
            a(f"{done}:")
        else:
            raise AssertionError(op)

    def element_address(self, e: A.Index) -> None:
        """rax = the address of array element `e`, after the bounds check."""
        base = e.base
        length = base.ty.length
        self.expr(e.index)
        oob = self.panic_label("index out of bounds", e.span)
        if _imm32(length):
            self.a(f"cmp rax, {length}")
        else:
            self.mov_imm("rcx", length)
            self.a("cmp rax, rcx")
        self.a(f"jae {oob}")
        if base.kind == "local":
            self.a(f"lea rcx, {self.local(base.local)}")
        elif base.kind == "tls":
            self.tls_address(base.name)
            self.a("mov rcx, r11")
        else:
            self.a.reloc("lea rcx, [rip]", nav(base.name), R_X86_64_PC32, -4)
        scale = base.ty.elem.size
        self.a(f"lea rax, [rcx + rax*{scale}]" if scale > 1 else "add rax, rcx")

    def index(self, e: A.Index) -> None:
        if e.base.ty == STR:
            self.expr(e.base)
            self.push()
            self.expr(e.index)
            self.a("mov rcx, rax")
            self.pop("rax")
            oob = self.panic_label("index out of bounds", e.span)
            self.a("cmp rcx, qword ptr [rax - 8]", f"jae {oob}",
                   "movzx eax, byte ptr [rax + rcx]")
            return
        self.element_address(e)
        self.a("movzx eax, byte ptr [rax]" if e.ty == BOOL else "mov rax, qword ptr [rax]")

    def user_call(self, e: A.Call) -> None:
        for arg in e.args:
            self.expr(arg)
            self.push()
        for reg in reversed(ARG_REGS[: len(e.args)]):
            self.pop(reg)
        self.call(nav(e.callee.name))

    def builtin(self, e: A.Call) -> None:
        a = self.a
        name = e.callee.name
        args = e.args
        if name in ("print", "eprint"):
            kinds = b"".join(PRINT_KIND[x.ty.name] for x in args)
            for x in args:
                self.expr(x)
                self.push()
            a(f"mov edi, {1 if name == 'print' else 2}", "mov rsi, rsp", f"mov edx, {len(args)}")
            self.lea("rcx", uav(kinds))
            self.call(lazy("toy.rt.print"))
            if args:
                a(f"add rsp, {8 * len(args)}")
                self.depth -= 8 * len(args)
        elif name == "len":
            x = args[0]
            if x.ty == STR:
                self.expr(x)
                a("mov rax, qword ptr [rax - 8]")
            else:
                self.mov_imm("rax", x.ty.length)
        elif name == "exit":
            self.expr(args[0])
            a("mov rdi, rax", f"mov eax, {SYS_EXIT_GROUP}", "syscall")
        elif name == "assert":
            self.expr(args[0])
            a("test rax, rax", f"je {self.panic_label('assertion failed', e.span)}")
        elif name == "argc":
            a.reloc("mov rax, qword ptr [rip]", lazy("toy.rt.argc"), R_X86_64_PC32, -4)
        elif name in ("argv", "parse_int"):
            self.expr(args[0])
            a("mov rdi, rax")
            self.call(lazy(f"toy.rt.{name}"))
            # The helper returns a failure flag in rdx; the panic names this call.
            message = "index out of bounds" if name == "argv" else "invalid integer"
            a("test edx, edx", f"jne {self.panic_label(message, e.span)}")
        elif name == "sleep_ms":
            self.expr(args[0])
            a("mov rdi, rax")
            self.call(lazy("toy.rt.sleep_ms"))
        elif name == "clock_ns":
            self.call(lazy("toy.rt.clock_ns"))
        elif name == "spawn":
            # The function's address comes from a relocation to its nav, as a call's target
            # does, so the linker keeps it right when the function moves.
            self.expr(args[1])
            a("mov rsi, rax")
            self.lea("rdi", nav(args[0].name))
            self.call(lazy("toy.rt.spawn"))
        elif name == "join":
            self.expr(args[0])
            a("mov rdi, rax")
            self.call(lazy("toy.rt.join"))
        else:
            raise AssertionError(f"built-in {name} has no code generator")


def lower_function(fn: A.FnDecl, path: str) -> Code:
    return FunctionGen(fn, path).lower()
