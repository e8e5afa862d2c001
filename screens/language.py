"""The language choice, reachable from every screen through the header's language button."""
from __future__ import annotations

from screens.overlay import Overlay


class LanguageOverlay(Overlay):
    pass
