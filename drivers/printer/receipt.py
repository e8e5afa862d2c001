"""Receipt printer: an ESC/POS thermal printer over USB, a serial port or TCP (python-escpos transports).

    [receipt_printer]
    driver = "escpos"
    transport = "usb"          # or "serial", "network"
    dot_width = 576            # 80 mm paper; 384 for 58 mm

Before anything is printed the printer's real-time status is read with DLE EOT (python-escpos' own
helpers cannot tell "no answer" from "no paper", so each reply byte is validated here): paper end,
cover open, offline and "no valid answer" are typed errors and nothing is printed; paper near end is a
warning returned by ``check_ready`` for the engine to journal. The receipt is one raster image sent in
bands, with the offline cause read between bands, so a cover opened mid-receipt stops the job with
CoverOpen. Every transport is opened with an explicit timeout (python-escpos defaults to none on USB
and 60 s on the network) and closed after each receipt: the next one opens a fresh handle.
"""
from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any, Literal

from kiosk.config import setting
from kiosk.errors import CoverOpen, PaperOut, PrinterOffline, ReceiptPrinterError
from kiosk.ports import Receipt
from kiosk.registry import register

from drivers.printer import escpos_codec as codec
from drivers.printer.receipt_render import IPAEX_GOTHIC, Layout, Venue, render_receipt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceiptOptions:
    transport: Literal["usb", "serial", "network"] = setting("usb", doc="How the printer is connected.")
    host: str = setting("127.0.0.1", doc="network: printer address.")
    port: int = setting(9100, doc="network: printer TCP port (raw 'port 9100').", min=1, max=65535)
    device: str = setting("/dev/ttyUSB0", doc="serial: device file.")
    baudrate: int = setting(38400, doc="serial: baud rate.", min=1200, max=921600)
    usb_vendor_id: int = setting(0x04B8, doc="usb: vendor id (lsusb), e.g. 0x04b8 Epson.", min=0, max=0xFFFF)
    usb_product_id: int = setting(0x0E28, doc="usb: product id (lsusb).", min=0, max=0xFFFF)
    usb_in_ep: int = setting(0x82, doc="usb: IN endpoint (status replies).", min=0, max=255)
    usb_out_ep: int = setting(0x01, doc="usb: OUT endpoint.", min=0, max=255)
    timeout: float = setting(3.0, doc="Seconds for opening the printer, each write and each status reply.",
                             min=0.1, max=60)
    dot_width: Literal[576, 384] = setting(576, doc="Printable dots per line: 576 (80 mm) or 384 (58 mm).")
    band_height: int = setting(96, doc="Raster rows sent per band; the cover/paper state is read between bands.",
                               min=8, max=960)
    cut: Literal["full", "partial"] = setting("partial", doc="Cut after each receipt.")
    feed_lines: int = setting(4, doc="Lines fed before the cut, so the last row clears the cutter.", min=0, max=20)
    font_path: str = setting(IPAEX_GOTHIC, doc="TrueType/OpenType font for every receipt line (IPAexGothic; "
                                               "it has no Hangul: Korean receipts need a font that does).")
    city_name: str = setting("", doc="City name on the receipt; empty uses [kiosk] city_name.")
    location: str = setting("", doc="Kiosk location on the receipt; empty uses [kiosk] location.")
    kiosk_id: str = setting("", doc="Kiosk id on the receipt; empty uses [kiosk] device_id.")
    inquiry_phone: str = setting("", doc="Inquiry phone on the receipt; empty uses [kiosk] inquiry_phone.")


def venue_from(options: ReceiptOptions, context: Any) -> Venue:
    kiosk = getattr(getattr(context, "config", None), "kiosk", None)
    pick = lambda own, attr: own or str(getattr(kiosk, attr, "") or "")  # noqa: E731
    return Venue(city_name=pick(options.city_name, "city_name"), location=pick(options.location, "location"),
                 kiosk_id=pick(options.kiosk_id, "device_id") or str(getattr(context, "device_id", "") or ""),
                 inquiry_phone=pick(options.inquiry_phone, "inquiry_phone"),
                 voucher_counter=pick("", "voucher_counter") or Venue.voucher_counter)


class EscposReceiptPrinter:
    """kiosk.ports.ReceiptPrinter over python-escpos transports."""

    def __init__(self, options: ReceiptOptions, context: Any = None) -> None:
        self.options = options
        self.venue = venue_from(options, context)
        self.layout = Layout(dot_width=options.dot_width, font_path=options.font_path)
        self.last_bytes_sent = 0

    # --- transport ----------------------------------------------------------------------------------

    def _open(self) -> Any:
        o = self.options
        where = self._where()
        try:
            if o.transport == "network":
                from escpos.printer import Network

                printer = Network(host=o.host, port=o.port, timeout=o.timeout)
            elif o.transport == "serial":
                from escpos.printer import Serial

                printer = Serial(devfile=o.device, baudrate=o.baudrate, timeout=o.timeout)
            else:
                from escpos.printer import Usb

                # pyusb counts in milliseconds; python-escpos' default 0 would block forever
                printer = Usb(o.usb_vendor_id, o.usb_product_id, timeout=int(o.timeout * 1000),
                              in_ep=o.usb_in_ep, out_ep=o.usb_out_ep)
            printer.open()
            if o.transport == "serial":
                printer.device.write_timeout = o.timeout  # python-escpos only sets the read timeout
            elif o.transport == "network" and printer.device is not None:
                # each 3-byte status request would otherwise wait out Nagle + delayed ACK (~40 ms)
                printer.device.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except Exception as exc:  # each transport has its own "not found" family
            raise PrinterOffline(f"receipt printer at {where} cannot be opened: {exc}; check its cable and power",
                                 device="receipt") from None
        if getattr(printer, "device", None) is None:
            raise PrinterOffline(f"receipt printer at {where} cannot be opened; check its cable and power",
                                 device="receipt")
        return printer

    def _where(self) -> str:
        o = self.options
        return {"network": f"{o.host}:{o.port}", "serial": o.device}.get(
            o.transport, f"usb {o.usb_vendor_id:04x}:{o.usb_product_id:04x}")

    def _send(self, printer: Any, data: bytes) -> None:
        try:
            printer._raw(data)  # python-escpos' transport write (no public raw-bytes method)
        except Exception as exc:
            raise PrinterOffline(f"receipt printer at {self._where()} stopped taking data: {exc}",
                                 device="receipt") from None
        self.last_bytes_sent += len(data)

    def _status(self, printer: Any, n: int) -> dict[str, bool]:
        self._send(printer, codec.status_request(n))
        try:
            reply = printer._read()
        except Exception as exc:  # socket.timeout, SerialException, usb.core.USBTimeoutError...
            raise PrinterOffline(f"receipt printer at {self._where()} did not answer status request DLE EOT {n} "
                                 f"within {self.options.timeout:g} s ({exc or type(exc).__name__}); check power "
                                 "and cable", device="receipt") from None
        try:
            return codec.decode_status(n, bytes(reply))
        except ValueError as exc:
            raise PrinterOffline(f"receipt printer at {self._where()} gave no usable status ({exc}); "
                                 "not printing while its state is unknown", device="receipt") from None

    def _close(self, printer: Any) -> None:
        try:
            printer.close()
        except Exception as exc:  # closing a dead handle is not worth more than a line in the log
            log.debug("closing receipt printer: %s", exc)

    # --- status --------------------------------------------------------------------------------------

    def _offline_cause(self, printer: Any) -> None:
        cause = self._status(printer, codec.STATUS_OFFLINE_CAUSE)
        if cause["cover_open"]:
            raise CoverOpen("receipt printer cover is open; close it", device="receipt")
        if cause["paper_end_stop"]:
            raise PaperOut("receipt printer stopped at paper end; load a new roll", device="receipt")
        if cause["error"]:
            errors = self._status(printer, codec.STATUS_ERROR_CAUSE)
            what = ", ".join(k.replace("_", " ") for k, v in errors.items() if v) or "unspecified error"
            raise ReceiptPrinterError(f"receipt printer reports an error ({what}); open and close the cover or "
                                      "power-cycle it", device="receipt")

    def _ready(self, printer: Any) -> list[str]:
        if self._status(printer, codec.STATUS_PRINTER)["offline"]:
            self._offline_cause(printer)
            raise PrinterOffline("receipt printer is offline; check its panel", device="receipt")
        self._offline_cause(printer)
        paper = self._status(printer, codec.STATUS_PAPER)
        if paper["paper_end"]:
            raise PaperOut("receipt printer is out of paper; load a new roll", device="receipt")
        if paper["paper_near_end"]:
            log.warning("receipt printer paper is near its end; replace the roll soon")
            return ["paper_near_end"]
        return []

    # --- the port ----------------------------------------------------------------------------------

    def check_ready(self) -> list[str]:
        printer = self._open()
        try:
            self._send(printer, codec.AUTO_STATUS_BACK_OFF)
            return self._ready(printer)
        finally:
            self._close(printer)

    def print_receipt(self, receipt: Receipt) -> None:
        image = render_receipt(receipt, self.venue, self.layout)
        self.print_image(image, receipt.transaction_id)

    def print_image(self, image: Any, what: str) -> None:
        """Print one 1-bit image as one receipt, then cut (also used for test receipts)."""
        width_bytes, height, bits = codec.raster_from_image(image)
        row = width_bytes
        self.last_bytes_sent = 0
        printer = self._open()
        try:
            self._send(printer, codec.INIT + codec.AUTO_STATUS_BACK_OFF)
            self._ready(printer)
            for top in range(0, height, self.options.band_height):
                rows = min(self.options.band_height, height - top)
                self._send(printer, codec.raster_image(width_bytes, rows, bits[top * row:(top + rows) * row]))
                self._offline_cause(printer)
            cut = codec.CUT_FULL if self.options.cut == "full" else codec.CUT_PARTIAL
            self._send(printer, codec.feed_lines(self.options.feed_lines) + cut)
            self._offline_cause(printer)
            log.info("receipt %s printed (%d bytes)", what, self.last_bytes_sent)
        finally:
            self._close(printer)


@register("receipt_printer", "escpos", ReceiptOptions)
def build_escpos_printer(options: ReceiptOptions, context: Any) -> EscposReceiptPrinter:
    return EscposReceiptPrinter(options, context)
