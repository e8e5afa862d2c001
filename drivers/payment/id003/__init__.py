"""JCM ID-003 note validators: pure codec (codec.py), serial transport (transport.py), validator (validator.py).

Facts and sources: docs/protocols/id003.md."""
