"""How ``patch`` swaps a module instance's forward and how ``unpatch`` puts it back.

One attribute on the instance (``ORIGINAL``) keeps the forward that was there before us: the fallbacks call
it, and ``restore`` reinstates it. Every replacement forward of the patch layer (kernels/patching/) is bound
through ``bind``, so one ``unpatch`` undoes them all.
"""

from __future__ import annotations

import types

from torch import nn

ORIGINAL = "_kernels_original_forward"


def bind(m: nn.Module, fn) -> bool:
    """Makes ``fn`` the forward of instance ``m`` (``self`` bound); False when ``m`` is already bound."""
    if ORIGINAL in m.__dict__:
        return False
    # the current forward (an accelerate hook's wrapper, say) is kept and is what the fallbacks call
    m.__dict__[ORIGINAL] = m.forward
    m.forward = types.MethodType(fn, m)
    return True


def is_bound(m: nn.Module) -> bool:
    return ORIGINAL in m.__dict__


def original(m: nn.Module):
    """The forward ``bind`` replaced (the fallback path)."""
    return m.__dict__[ORIGINAL]


def restore(m: nn.Module) -> None:
    """Undoes ``bind`` on ``m`` (nothing when it is not bound)."""
    if ORIGINAL not in m.__dict__:
        return
    m.__dict__.pop("forward", None)
    orig = m.__dict__.pop(ORIGINAL)
    if getattr(orig, "__self__", None) is not m or getattr(orig, "__func__", None) is not type(m).forward:
        m.forward = orig  # a wrapper that was there before us (accelerate hooks): put it back
