"""Cash payment: the money rules (rules.py) behind small device interfaces (devices.py), one provider
that owns the devices (provider.py, registered as the "cash" driver), and the [cash] options that
choose each device's bus (options.py).

Buses: drivers/payment/cctalk (coins, hoppers, notes), drivers/payment/id003 (JCM note validators).
The bus packages import devices.py, so the provider (which imports them) is loaded on first use.
"""
from __future__ import annotations

from typing import Any

from .devices import EscrowEmpty, NoteEvent, NoteEventKind, PollResult
from .options import CashOptions, EscrowCode, HopperOptions, Id003Options
from .rules import JAPANESE_COINS, JAPANESE_NOTES, Payment, can_make, plan_change

__all__ = ["CashOptions", "CashPayment", "EscrowCode", "EscrowEmpty", "HopperOptions", "Id003Options",
           "JAPANESE_COINS", "JAPANESE_NOTES", "NoteEvent", "NoteEventKind", "Payment", "PollResult",
           "build_cash", "can_make", "plan_change"]


def __getattr__(name: str) -> Any:
    if name in ("CashPayment", "build_cash"):
        from . import provider
        return getattr(provider, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
