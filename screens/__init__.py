"""The Kivy touch UI: what residents see and touch.

One ``.py`` + one ``.kv`` per screen. Screens only draw the engine's immutable ``ViewState`` and answer
with intents (``kiosk.engine.events``); they never import drivers, sync or city hall code. The engine
runs on its own thread; views reach the Kivy thread through the Clock (see ``screens.app``).

Importing this package does not import Kivy: ``screens.app`` does, so the composition root can set up
the environment (fonts, window size, input providers) first.
"""
