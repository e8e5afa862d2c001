"""Everything that crosses the network between a kiosk and city hall.

``sync.signing`` (the request-signing wire format, imported by both ends), ``sync.device_key`` (the
kiosk's Ed25519 device key) and ``sync.issuance_client`` (the kiosk's implementation of
``kiosk.ports.CityHallClient``). May import kiosk ports/errors/config, requests and cryptography;
never screens, drivers or kivy.
"""
