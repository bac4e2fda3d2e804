"""vimtui: a terminal virtual infrastructure manager for fleets of libvirt hosts."""

__version__ = "0.1.0"
