"""City hall's issuance service: device-authenticated API, card authentication against the JPKI
authentication CA and CRL, the resident-registry adapter, certificate rendering (cityhall.documents)
and issuance records on SQLite or PostgreSQL (cityhall.storage).

May import sync (wire format), kiosk.config / kiosk.errors (config loading) and its web/db libraries;
never the kiosk engine, drivers or screens.
"""
