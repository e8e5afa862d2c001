"""Emulators of every device at its real protocol, for tests and the demo."""
