"""The code-and-relocations contract, as the compiler and its plugins know it.

It is the linker's (`linker.code`): the compiler depends on the linker, never the reverse.
This module names the same objects, so that `toyc.code` keeps working for plugins.
"""

from linker.code import *  # noqa: F403
from linker.code import __all__  # noqa: F401
