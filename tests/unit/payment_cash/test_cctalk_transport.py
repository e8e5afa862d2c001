"""Transport: echo removal, bounded retries on silence / bad checksum, NAK, no re-send when told."""
from __future__ import annotations

import pytest

from drivers.payment.cctalk.codec import ChecksumMode, Header
from drivers.payment.cctalk.transport import CcTalkTransport, NakReceived
from kiosk.errors import PaymentDeviceFault

H = bytes.fromhex
POLL = H("02 00 01 FE FF")
ACK = H("01 00 02 00 FD")


class ScriptedSerial:
    """Answers each write with the next scripted reply (bytes, or None for silence); records writes."""

    def __init__(self, replies: list[bytes | None], echo: bool = True) -> None:
        self.replies = list(replies)
        self.echo = echo
        self.writes: list[bytes] = []
        self.timeout: float | None = None
        self._rx = bytearray()

    def write(self, data: bytes) -> int:
        self.writes.append(bytes(data))
        if self.echo:
            self._rx += data
        reply = self.replies.pop(0) if self.replies else None
        if reply:
            self._rx += reply
        return len(data)

    def read(self, size: int = 1) -> bytes:
        out, self._rx = bytes(self._rx[:size]), self._rx[size:]
        return out

    def reset_input_buffer(self) -> None:
        self._rx.clear()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def transport(port: ScriptedSerial, **kw: object) -> CcTalkTransport:
    return CcTalkTransport(port, reply_timeout=0.02, **kw)  # type: ignore[arg-type]


def test_echo_is_stripped_and_reply_returned() -> None:
    port = ScriptedSerial([ACK])
    assert transport(port).request(2, Header.SIMPLE_POLL) == b""
    assert port.writes == [POLL]


def test_without_echo_the_reply_is_read_directly() -> None:
    port = ScriptedSerial([H("01 06 02 00") + b"Payout" + bytes(((-sum(H("01 06 02 00") + b"Payout")) & 0xFF,))],
                          echo=False)
    assert transport(port, echo=False).request(2, Header.REQUEST_EQUIPMENT_CATEGORY) == b"Payout"


def test_silence_and_bad_checksum_are_retried_within_budget() -> None:
    port = ScriptedSerial([None, H("01 00 02 00 FE"), ACK])
    t = transport(port, retries=3)
    assert t.request(2, Header.SIMPLE_POLL) == b""
    assert port.writes == [POLL, POLL, POLL] and t.retries_used == 2


def test_budget_exhausted_raises_a_typed_fault_naming_the_device() -> None:
    port = ScriptedSerial([None, None, None])
    with pytest.raises(PaymentDeviceFault) as err:
        transport(port, retries=2).request(2, Header.SIMPLE_POLL)
    assert len(port.writes) == 3
    assert err.value.code == 306 and "address 2" in err.value.detail


def test_no_resend_when_retries_zero() -> None:
    port = ScriptedSerial([None, ACK])
    with pytest.raises(PaymentDeviceFault):
        transport(port).request(3, Header.DISPENSE_HOPPER_COINS, b"\x02", retries=0)
    assert len(port.writes) == 1


def test_nak_is_reported_not_retried() -> None:
    port = ScriptedSerial([H("01 00 03 05 F7")])
    with pytest.raises(NakReceived):
        transport(port).request(3, Header.DISPENSE_HOPPER_COINS, b"\x02")
    assert len(port.writes) == 1


def test_reply_from_the_wrong_device_is_not_taken() -> None:
    port = ScriptedSerial([H("01 00 03 00 FC"), ACK])  # an ACK from address 3 to a request for address 2
    t = transport(port)
    assert t.request(2, Header.SIMPLE_POLL) == b""
    assert len(port.writes) == 2


def test_wrong_echo_is_a_retry_not_a_reply() -> None:
    port = ScriptedSerial([ACK], echo=False)  # host configured for echo, interface gives none
    with pytest.raises(PaymentDeviceFault) as err:
        transport(port, retries=1).request(2, Header.SIMPLE_POLL)
    assert "echo" in err.value.detail


def test_crc_mode_frames() -> None:
    port = ScriptedSerial([bytes((1, 0, 48, 0, 55))])
    assert transport(port, mode=ChecksumMode.CRC16).request(40, Header.RESET_DEVICE) == b""
    assert port.writes == [bytes((40, 0, 70, 1, 63))]
