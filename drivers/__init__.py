"""Adapters implementing kiosk.ports, one sub-package per device family, and their emulators (sim/)."""
