"""Madoguchi kiosk core: config, ports, the transaction engine, the journal and crash recovery.

Nothing in this package talks to a device, a screen or the network directly; drivers/, screens/ and
sync/ plug into the ports defined in kiosk.ports, and kiosk.compose is the one place that wires them.
"""

__version__ = "0.1.0"
