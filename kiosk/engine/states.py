"""The transaction states and, for each, how long it may last and whether a resident is waited on."""
from __future__ import annotations

import enum


class State(enum.Enum):
    IDLE = "IDLE"
    CARD_READING = "CARD_READING"
    PIN_ENTRY = "PIN_ENTRY"
    AUTHENTICATING = "AUTHENTICATING"
    REMOVE_CARD = "REMOVE_CARD"
    CHOOSING = "CHOOSING"
    CONFIRMING = "CONFIRMING"
    PAYING = "PAYING"
    ISSUING = "ISSUING"
    PRINTING = "PRINTING"
    RECEIPT = "RECEIPT"
    DONE = "DONE"
    REFUNDING = "REFUNDING"
    ERROR = "ERROR"  # a message for the resident; no money is held in this state
    OUT_OF_SERVICE = "OUT_OF_SERVICE"
    FAILSAFE = "FAILSAFE"


#: States in which the kiosk waits for the resident to act; they get the "are you still there?"
#: warning. DONE and ERROR only show a result until their timeout, so they get none.
WAITING_FOR_RESIDENT = frozenset({State.PIN_ENTRY, State.REMOVE_CARD, State.CHOOSING, State.CONFIRMING,
                                  State.PAYING})

#: States after which money may be held: everything from the payment intent on.
MONEY_STATES = frozenset({State.PAYING, State.ISSUING, State.PRINTING, State.RECEIPT, State.REFUNDING})

#: The config key (kiosk.config.TimeoutsSection) holding each state's timeout; None = no timeout.
TIMEOUT_KEYS: dict[State, str | None] = {
    State.IDLE: None,
    State.CARD_READING: "card_reading",
    State.PIN_ENTRY: "pin_entry",
    State.AUTHENTICATING: "authenticating",
    State.REMOVE_CARD: "remove_card",
    State.CHOOSING: "choosing",
    State.CONFIRMING: "confirming",
    State.PAYING: "paying",
    State.ISSUING: "issuing",
    State.PRINTING: "printing",
    State.RECEIPT: "receipt",
    State.DONE: "done",
    State.REFUNDING: None,  # bounded by the payment drivers' own timeouts
    State.ERROR: "error",
    State.OUT_OF_SERVICE: None,
    State.FAILSAFE: None,
}
