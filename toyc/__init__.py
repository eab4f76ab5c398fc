"""toyc: an incremental, hot-swapping compiler of the Toy language to x86_64 ELF."""

__version__ = "0.1.0"
