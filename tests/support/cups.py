"""A private printing stack (cupsd → ippeveprinter) for tests. The code lives in
drivers/sim/services/cups.py so the demo (`kiosk demo`) starts it exactly as the tests do."""
from __future__ import annotations

from drivers.sim.services.cups import (FAULT_MODES, CupsStack, FaultControl, acquire_dnssd, cups_stack,
                                       release_dnssd)

__all__ = ["FAULT_MODES", "CupsStack", "FaultControl", "acquire_dnssd", "cups_stack", "release_dnssd"]
