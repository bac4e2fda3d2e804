"""vimtui: a terminal virtual infrastructure manager for fleets of libvirt hosts."""

from vimtui._imports import prime

prime()  # import-time savings, before anything imports plotext or asyncssh (see vimtui/_imports.py)

__version__ = "0.1.0"
