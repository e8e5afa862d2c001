"""Payment drivers: cash over ccTalk (cctalk/ + cash.py) and cashless QR over HTTP (qr/)."""
