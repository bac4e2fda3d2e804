"""The UUID and name of each domain a bulk stats call returned, and the domain objects' release, read without
letting go of the interpreter lock.

libvirt-python lets go of the lock around every call into libvirt, even those that only read the domain
object's memory (virDomainGetUUID, virDomainGetName) or drop a reference to it (virDomainFree, when the
Python object goes). For a poll's records that is three hand-overs per VM, made on the event loop while
the other hosts' lanes want the lock: each then waits its turn. Measured at start-up with 50 hosts of 200
VMs: 19,720 of each call took 0.44, 0.35 and 0.43 s of the loop's time (about 20 µs a call, against 0.6 µs
alone). Besides, each of libvirt's public calls on a domain formats its UUID as text for a debug message,
logged or not (VIR_DOMAIN_DEBUG: a snprintf of 16 bytes), which perf puts at a tenth of `vimtui export`'s
CPU on that fleet.

So the UUID and the name are read from the domain object's own memory (`_Domain`, libvirt's struct
_virDomain: its UUID bytes and the pointer to its name), checked once against what virDomainGetUUID and
virDomainGetName give for a real domain (the name's pointer compared, not read, so a layout that does not
match is found without following a wrong pointer), and each domain is then freed through ctypes' PyDLL,
which keeps the lock. Measured on a test-driver host of 200 domains: 1.7 µs a record, the domains freed,
against 2.0 µs for the methods alone and 18 µs for them while three other threads make bulk calls. The
bulk call itself is made through libvirtmod (`bulk_stats`): the domains come as capsules, without the
virDomain object libvirt-python makes around each (in Python) and whose __del__ it calls when it goes.

The domains are given back through virObjectUnref, which libvirt exports among its private symbols for its
daemons and drivers: virDomainFree is the same release behind a check of the object's class and a debug
message, whose UUID formatting is most of its cost (0.88 against 1.29 µs a domain on the test driver; the
release itself formats it once more for its own message). Where libvirt does not export it, virDomainFree.

Where the layout does not match, the two reads are calls through ctypes (holding the lock, 2.7 µs a
record); where libvirt's library cannot be loaded that way, the libvirt-python methods do it all.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable, Sequence
from typing import Any

import libvirt
import libvirtmod  # type: ignore[import-not-found]  # libvirt-python's C half

pointer_of = libvirtmod.virDomain_pointer


class _GObject(ctypes.Structure):
    _fields_ = [("g_class", ctypes.c_void_p), ("ref_count", ctypes.c_uint), ("qdata", ctypes.c_void_p)]


class _Domain(ctypes.Structure):
    """libvirt's struct _virDomain (src/datatypes.h; a GObject first since libvirt 6.x)."""

    _fields_ = [
        ("parent", _GObject),
        ("conn", ctypes.c_void_p),
        ("name", ctypes.c_char_p),
        ("id", ctypes.c_int),
        ("uuid", ctypes.c_ubyte * 16),
    ]


_NAME_AT = _Domain.name.offset  # type: ignore[attr-defined]


class DomainRefs:
    """`take(records)`: the (16 bytes of the UUID, name) of each record's domain, the domains then freed."""

    def __init__(self, release: Sequence[str] = ("virObjectUnref", "virDomainFree")) -> None:
        self._buf = ctypes.create_string_buffer(16)
        self.layout: bool | None = None
        """Whether the domain objects' memory is read directly: None until checked on a first domain."""
        try:
            lib = ctypes.PyDLL("libvirt.so.0")  # the library libvirtmod is linked with, already loaded
            get_uuid, get_name, free = lib.virDomainGetUUID, lib.virDomainGetName, lib.virDomainFree
            name_ptr = ctypes.cast(get_name, type(get_name))  # the same function, its answer as a pointer
        except (OSError, AttributeError):
            self.fast = False
            return
        get_uuid.argtypes, get_uuid.restype = [ctypes.c_void_p, ctypes.c_char_p], ctypes.c_int
        get_name.argtypes, get_name.restype = [ctypes.c_void_p], ctypes.c_char_p
        name_ptr.argtypes, name_ptr.restype = [ctypes.c_void_p], ctypes.c_void_p
        self._get_uuid, self._get_name, self._name_ptr, self._free = get_uuid, get_name, name_ptr, free
        for name in release:  # the first that libvirt exports (see the module: virObjectUnref)
            with contextlib.suppress(AttributeError):
                self._free = getattr(lib, name)
                break
        self._free.argtypes, self._free.restype = [ctypes.c_void_p], None
        self.release: str = self._free.__name__
        """The call that gives a domain back."""
        self.fast = True

    def _check_layout(self, ptr: int) -> bool:
        """Whether `_Domain` is how this libvirt lays out the domain at `ptr`: its UUID bytes as
        virDomainGetUUID gives them and its name's pointer the one virDomainGetName returns."""
        buf = self._buf
        if self._get_uuid(ptr, buf) != 0:
            return False
        name = self._name_ptr(ptr)
        return bool(name) and (
            ctypes.c_void_p.from_address(ptr + _NAME_AT).value == name
            and bytes(_Domain.from_address(ptr).uuid) == buf.raw
        )

    def take(self, records: Sequence[tuple[Any, Any]]) -> list[tuple[bytes, str]]:
        """Each record's domain's UUID bytes and name. Records of `bulk_stats` (domains as libvirt-python's
        capsules) have their domains freed here, holding the lock: only for the domains of a connection
        that stays open (the last reference to a connection would close it, which must not happen holding
        the lock). Read from the domains' memory where its layout checked out (see the module), else
        through ctypes. Other records (libvirt-python's virDomain objects, where ctypes cannot load
        libvirt) through their methods, the objects freeing their domains when they go."""
        if not isinstance(records, Records):
            return [(dom.UUID(), dom.name()) for dom, _stats in records]
        pointers: list[int] | None = None
        try:
            pointers = [pointer_of(cap) for cap, _stats in records]
            if pointers and self.layout is None:
                self.layout = self._check_layout(pointers[0])
            if self.layout:
                at = _Domain.from_address
                try:
                    return [(bytes((d := at(p)).uuid), d.name.decode("utf-8", "replace")) for p in pointers]
                except AttributeError:  # a domain without a name (None has no decode): libvirt's calls say
                    return [
                        (bytes(d.uuid), d.name.decode("utf-8", "replace"))
                        if (d := at(ptr)).name is not None
                        else self._asked(cap)
                        for ptr, (cap, _stats) in zip(pointers, records, strict=True)
                    ]
            return [self._asked(cap) for cap, _stats in records]
        finally:
            records.free(self._free, pointers)

    def _asked(self, cap: Any) -> tuple[bytes, str]:
        """A domain's UUID and name through libvirt's calls: through ctypes holding the lock, or where
        libvirt refuses, libvirt-python's, whose error is raised."""
        ptr = pointer_of(cap)
        name = self._get_name(ptr)
        if name is not None and self._get_uuid(ptr, self._buf) == 0:
            return self._buf.raw, name.decode("utf-8", "replace")
        raw, text = libvirtmod.virDomainGetUUID(cap), libvirtmod.virDomainGetName(cap)
        if raw is None or text is None:
            raise libvirt.libvirtError("virDomainGetUUID() failed")
        return raw, text


class Records(list[tuple[Any, dict[str, Any]]]):
    """A bulk call's (domain, stats) pairs as libvirtmod gives them: each domain a capsule of libvirt's
    pointer, which nothing frees but `free` (DomainRefs.take), or this list when it goes with its domains
    still held (a poll whose caller stopped waiting): then through libvirt-python, which lets go of the
    interpreter lock (the last domain of a dropped connection closes it)."""

    __slots__ = ("freed",)

    def __init__(self, items: list[tuple[Any, dict[str, Any]]]) -> None:
        super().__init__(items)
        self.freed = False

    def free(self, free: Callable[[int], Any], pointers: list[int] | None = None) -> None:
        """Free each domain once, through `free(pointer)` (`pointers`: the domains', when known)."""
        if not self.freed:
            self.freed = True
            if pointers is None or len(pointers) != len(self):
                pointers = [pointer_of(cap) for cap, _stats in self]
            for _ in map(free, pointers):
                pass

    def __del__(self) -> None:
        if not self.freed:
            self.freed = True
            for cap, _stats in self:
                libvirtmod.virDomainFree(cap)


def bulk_stats(conn: Any, stats: int, flags: int) -> list[tuple[Any, dict[str, Any]]]:
    """conn.getAllDomainStats(stats, flags), without libvirt-python's virDomain object around each domain
    (made in Python on the lane, and its __del__ called on the loop: about a microsecond a record, at
    every poll): Records, whose domains DomainRefs.take reads and frees. Where ctypes cannot load
    libvirt, the method itself."""
    if not DOMAIN_REFS.fast:
        return conn.getAllDomainStats(stats, flags)  # type: ignore[no-any-return]
    ret = libvirtmod.virConnectGetAllDomainStats(conn._o, stats, flags)
    if ret is None:
        raise libvirt.libvirtError("virConnectGetAllDomainStats() failed")  # reads this thread's error
    return Records(ret)


DOMAIN_REFS = DomainRefs()
"""The records' UUIDs and names, and their release, read holding the interpreter lock."""
