"""ccTalk: pure codec (codec.py), serial transport with echo removal and retries (transport.py), and the
host side of the coin acceptor, note validator and hoppers (devices.py)."""
