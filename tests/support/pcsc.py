"""A private PC/SC stack (pcscd + vpcd + the virtual card) for tests. The code lives in
drivers/sim/services/pcsc.py so the demo (`kiosk demo`) starts it exactly as the tests do."""
from __future__ import annotations

from drivers.sim.services.pcsc import (SOCKET_ENV, VPCD_READER, PcscStack, VirtualCard, pcsc_stack,
                                       shared_pcsc_stack, start_pcsc_stack, start_virtual_card, virtual_card)

__all__ = ["SOCKET_ENV", "VPCD_READER", "PcscStack", "VirtualCard", "pcsc_stack", "shared_pcsc_stack",
           "start_pcsc_stack", "start_virtual_card", "virtual_card"]
