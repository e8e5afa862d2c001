"""My Number card (JPKI user authentication) over PC/SC.

``drivers.card.apdu`` is the pure codec; ``drivers.card.pcsc`` the pyscard transport, the session and the
presence monitor, registered as the ``pcsc`` driver of the ``card`` role when imported.
"""
