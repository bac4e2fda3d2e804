"""(being written)"""

from __future__ import annotations

from vimtui.core.actions.base import VmAction

ACTIONS: tuple[VmAction, ...] = ()
