"""Start and stop the services the tests need, each stopped by its own pid. The code lives in
drivers/sim/services/process.py so the demo (`kiosk demo`) starts services exactly as the tests do."""
from __future__ import annotations

from drivers.sim.services.process import (ManagedProcess, ServiceFailed, free_port, port_open, require_binary,
                                          wait_until)

__all__ = ["ManagedProcess", "ServiceFailed", "free_port", "port_open", "require_binary", "wait_until"]
