"""The UUID and name of each domain a bulk stats call returned, and the domain objects' release, read without
letting go of the interpreter lock.

libvirt-python lets go of the lock around every call into libvirt, even those that only read the domain
object's memory (virDomainGetUUID, virDomainGetName) or drop a reference to it (virDomainFree, when the
Python object goes). For a poll's records that is three hand-overs per VM, made on the event loop while
the other hosts' lanes want the lock: each then waits its turn. Measured at start-up with 50 hosts of 200
VMs: 19,720 of each call took 0.44, 0.35 and 0.43 s of the loop's time (about 20 µs a call, against 0.6 µs
alone), which held the first full table back. The same three functions called through ctypes' PyDLL keep
the lock (they never block: no call reaches the host), at about 3 µs a record whoever else runs. Alone
(no other lane in a call), the methods cost less, and are used.

Where libvirt's library cannot be loaded that way, the libvirt-python methods do the same work.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any


class DomainRefs:
    """`take(records)`: the (16 bytes of the UUID, name) of each record's domain, the domains then freed."""

    def __init__(self) -> None:
        self._buf = ctypes.create_string_buffer(16)
        try:
            lib = ctypes.PyDLL("libvirt.so.0")  # the library libvirtmod is linked with, already loaded
            get_uuid, get_name, free = lib.virDomainGetUUID, lib.virDomainGetName, lib.virDomainFree
        except (OSError, AttributeError):
            self.fast = False
            return
        get_uuid.argtypes, get_uuid.restype = [ctypes.c_void_p, ctypes.c_char_p], ctypes.c_int
        get_name.argtypes, get_name.restype = [ctypes.c_void_p], ctypes.c_char_p
        free.argtypes, free.restype = [ctypes.c_void_p], ctypes.c_int
        self._get_uuid, self._get_name, self._free = get_uuid, get_name, free
        self.fast = True

    def take(self, records: Sequence[tuple[Any, Any]], contended: bool = True) -> list[tuple[bytes, str]]:
        """Each record's domain's UUID bytes and name. `contended` (other threads want the lock: calls in
        flight on other lanes): read holding the lock, and the domain objects freed here (their Python
        objects then hold nothing and free nothing when they go). Else the libvirt-python methods, which
        cost less alone (0.45 µs a record less: ctypes' calls are the dearer part then). Only for the
        domains of a connection that stays open: the last reference to a connection would close it,
        which must not happen holding the lock."""
        if not (self.fast and contended):
            return [(dom.UUID(), dom.name()) for dom, _stats in records]
        get_uuid, get_name, buf = self._get_uuid, self._get_name, self._buf
        out: list[tuple[bytes, str]] = []
        pointers: list[int] = []
        try:
            for dom, _stats in records:
                ptr = dom.c_pointer()
                pointers.append(ptr)
                name = get_name(ptr)
                if name is None or get_uuid(ptr, buf) != 0:  # libvirt refused: what the methods say
                    out.append((dom.UUID(), dom.name()))
                else:
                    out.append((buf.raw, name.decode("utf-8", "replace")))
        finally:
            free = self._free
            for (dom, _stats), ptr in zip(records, pointers, strict=False):
                dom._o = None
                free(ptr)
        return out
