"""The transaction engine (see machine.py) and its vocabulary: states, events and the view state."""
from kiosk.engine import events
from kiosk.engine.hours import ServiceHours
from kiosk.engine.machine import Engine, EnginePorts, SystemClock, validate_order
from kiosk.engine.states import State
from kiosk.engine.view import ErrorView, PaymentView, ViewState

__all__ = ["events", "Engine", "EnginePorts", "ServiceHours", "State", "SystemClock", "validate_order",
           "ErrorView", "PaymentView", "ViewState"]
