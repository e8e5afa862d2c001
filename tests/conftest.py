"""Suite-wide settings. The card guard fails the whole run if any test made the kiosk's card code
touch what it must never touch (the text-attribute AP, the signature certificate or its PIN)."""
from __future__ import annotations

pytest_plugins = ["tests.support.card_guard"]
