"""A4 certificate printer: one CUPS job per document, followed until the printer says it printed.

    [document_printer]
    driver = "cups"
    queue = "kiosk-a4"

The chain is kiosk → cupsd → ipp backend → the printer. "Printed" means the CUPS job completed cleanly
(see ipp_status.completed_successfully) and, where CUPS counted pages, all pages came out. While a job
runs the printer itself is asked for its state (for ipp/ipps device URIs): the CUPS ipp backend keeps a
job "processing" for as long as a switched-off printer stays away and reports that only in a message,
so the printer's own answer (or refusal) is what turns a dead printer into PrinterOffline quickly. A
fault found there pauses the queue, so nothing else is sent to a broken printer; ``check_ready`` (called
before any money is taken) re-enables the queue once the printer reports itself healthy.

Each document is written to its own private folder named after the job, handed to CUPS and deleted
right after submission; no file or buffer is ever shared between two jobs. The kiosk's cupsd.conf must
say ``PreserveJobFiles No`` so that CUPS drops its copy once the job ends (job history is kept, which
``job_outcome`` uses after a crash).
"""
from __future__ import annotations

import logging
import re
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit

from kiosk.config import setting
from kiosk.errors import PrinterError, PrinterOffline, PrintJobFailed, PrintTimeout
from kiosk.ports import PrintOutcome
from kiosk.registry import register

from drivers.printer.ipp_status import (JOB_PENDING, JOB_PROCESSING, JOB_TERMINAL, PRINTER_STOPPED, as_list,
                                        classify_reasons, job_printed, outcome_of, pdf_page_count)

log = logging.getLogger(__name__)
T = TypeVar("T")

JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_QUEUE_ATTRS = ["printer-state", "printer-state-reasons", "printer-state-message", "printer-is-accepting-jobs",
                "device-uri"]
_JOB_ATTRS = ["job-state", "job-state-reasons", "job-printer-state-reasons", "job-printer-state-message",
              "job-impressions-completed"]
_DEVICE_ATTRS = ["printer-state", "printer-state-reasons", "printer-state-message"]


@dataclass(frozen=True)
class CupsOptions:
    queue: str = setting(doc="CUPS queue of the A4 printer (lpadmin -p NAME -E -v ipp://PRINTER/ipp/print "
                             "-m everywhere).", pattern=r"[A-Za-z0-9_.-]{1,127}")
    server: str = setting("", doc="CUPS server: empty for the system's own (/run/cups/cups.sock), else a "
                                  "socket path or host:port.")
    media: str = setting("iso_a4_210x297mm", doc="IPP media keyword every job asks for.")
    passthrough_pdf: bool = setting(False, doc="Send the PDF unfiltered (raw). Only for printers that accept "
                                               "PDF; spares the Pi the filter chain and keeps the bytes "
                                               "identical. CUPS then cannot count pages.")
    request_timeout: float = setting(10.0, doc="Seconds for any one request to CUPS or to the printer.",
                                     min=0.5, max=120)
    pending_timeout: float = setting(30.0, doc="Seconds a job may wait before it starts printing.", min=1)
    processing_timeout: float = setting(120.0, doc="Seconds a started job may take to finish printing.", min=5)
    fault_grace: float = setting(6.0, doc="Seconds a printer fault or an unreachable printer must last during "
                                          "a job before the job is cancelled (a reconnect at job start is "
                                          "normal).", min=0, max=120)
    poll_interval: float = setting(0.25, doc="Seconds between job state checks.", min=0.05, max=5)
    probe_interval: float = setting(1.0, doc="Seconds between questions to the printer itself during a job.",
                                    min=0.1, max=30)
    probe_device: bool = setting(True, doc="Ask the printer itself (ipp/ipps/socket device URIs) whether it "
                                           "is reachable and healthy, before and during every job.")
    spool_dir: str = setting("", doc="Folder for the per-job spool folders; empty means "
                                     "<data_dir>/spool/a4 (or the system temp dir without a data dir).")


@dataclass(frozen=True)
class DeviceState:
    """What the printer itself said (or that it did not answer)."""

    reachable: bool
    answered: bool
    state: int = 0
    reasons: tuple[str, ...] = ()
    message: str = ""
    problem: str = ""


class _NoAnswer(Exception):
    pass


def _bounded(fn: Callable[[], T], timeout: float, what: str) -> T:
    """Run a blocking pycups call with a hard time limit (pycups has none of its own)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=run, name=f"cups {what}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise _NoAnswer(f"{what}: no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _split_server(server: str) -> tuple[str | None, int | None]:
    if not server:
        return None, None
    if server.startswith("/"):
        return server, None
    host, _, port = server.rpartition(":")
    if host and port.isdigit():
        return host, int(port)
    return server, None


class CupsDocumentPrinter:
    """kiosk.ports.DocumentPrinter over pycups."""

    def __init__(self, options: CupsOptions, context: Any = None) -> None:
        import cups  # a device library: imported where the driver is built, not by whoever lists drivers

        self._cups = cups
        self.options = options
        data_dir = getattr(context, "data_dir", None)
        if options.spool_dir:
            self.spool_root = Path(options.spool_dir)
        elif data_dir is not None:
            self.spool_root = Path(data_dir) / "spool" / "a4"
        else:
            self.spool_root = Path(tempfile.gettempdir()) / "madoguchi-spool-a4"
        self._conn: Any = None

    # --- talking to cupsd -------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[Any], T]) -> T:
        """One request to the local cupsd, bounded; a connection that failed or hung is dropped."""
        cups = self._cups

        def run() -> T:
            if self._conn is None:
                host, port = _split_server(self.options.server)
                kwargs: dict[str, Any] = {}
                if host:
                    kwargs["host"] = host
                if port:
                    kwargs["port"] = port
                self._conn = cups.Connection(**kwargs)
            return fn(self._conn)

        try:
            return _bounded(run, self.options.request_timeout, what)
        except _NoAnswer as exc:
            self._conn = None
            raise PrinterOffline(f"CUPS did not answer ({exc}); check cupsd: `systemctl status cups`, "
                                 "/var/log/cups/error_log", queue=self.options.queue) from None
        except cups.IPPError as exc:
            status, message = exc.args if len(exc.args) == 2 else (0, str(exc))
            raise PrinterError(f"CUPS refused {what} on queue {self.options.queue}: {message} (IPP status "
                               f"{status:#06x}); check the queue with `lpstat -l -p {self.options.queue}`",
                               queue=self.options.queue) from None
        except (RuntimeError, cups.HTTPError) as exc:
            self._conn = None
            raise PrinterOffline(f"cannot reach CUPS for {what}: {exc}; is cupsd running "
                                 "(`systemctl status cups`)?", queue=self.options.queue) from None

    def _queue(self) -> dict[str, Any]:
        return self._call("get-printer-attributes",
                          lambda c: c.getPrinterAttributes(self.options.queue, requested_attributes=_QUEUE_ATTRS))

    def _job(self, job_id: int) -> dict[str, Any]:
        return self._call("get-job-attributes", lambda c: c.getJobAttributes(job_id, requested_attributes=_JOB_ATTRS))

    # --- talking to the printer itself --------------------------------------------------------------

    def probe(self, device_uri: str) -> DeviceState | None:
        """Ask the printer behind the queue for its state; None when its URI cannot be probed."""
        if not self.options.probe_device:
            return None
        parts = urlsplit(device_uri)
        scheme = parts.scheme.lower()
        if scheme not in ("ipp", "ipps", "http", "https", "socket") or not parts.hostname:
            return None
        default_port = {"socket": 9100, "ipps": 631, "https": 443}.get(scheme, 631)
        host, port = parts.hostname, parts.port or default_port
        timeout = self.options.request_timeout
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as exc:
            return DeviceState(reachable=False, answered=False, problem=f"{host}:{port} refused or unreachable ({exc})")
        if scheme == "socket":
            return DeviceState(reachable=True, answered=True)
        cups = self._cups
        encryption = cups.HTTP_ENCRYPT_ALWAYS if scheme in ("ipps", "https") else cups.HTTP_ENCRYPT_IF_REQUESTED

        def ask() -> dict[str, Any]:
            conn = cups.Connection(host=host, port=port, encryption=encryption)
            return conn.getPrinterAttributes(uri=device_uri.split("?", 1)[0], requested_attributes=_DEVICE_ATTRS)

        try:
            attrs = _bounded(ask, timeout, f"get-printer-attributes {host}:{port}")
        except _NoAnswer as exc:
            return DeviceState(reachable=True, answered=False, problem=str(exc))
        except (RuntimeError, cups.IPPError, cups.HTTPError) as exc:
            return DeviceState(reachable=True, answered=False, problem=f"{host}:{port} answered with an error: {exc}")
        return DeviceState(reachable=True, answered=True, state=int(attrs.get("printer-state", 0)),
                           reasons=tuple(as_list(attrs.get("printer-state-reasons"))),
                           message=str(attrs.get("printer-state-message", "")))

    @staticmethod
    def _device_fault(device: DeviceState) -> PrinterError | None:
        if not device.reachable:
            return PrinterOffline(f"the A4 printer is off or unreachable: {device.problem}; switch it on and "
                                  "check its network cable", reason="unreachable")
        if not device.answered:
            return PrinterOffline(f"the A4 printer does not answer: {device.problem}; power-cycle it",
                                  reason="no-answer")
        verdict = classify_reasons(device.reasons, "the A4 printer")
        if verdict.fault is None and device.state == PRINTER_STOPPED:
            return PrinterOffline(f"the A4 printer reports itself stopped ({device.message or 'no message'})",
                                  reason="stopped")
        return verdict.fault

    # --- the port ---------------------------------------------------------------------------------

    def check_ready(self) -> None:
        queue = self._queue()
        paused = int(queue.get("printer-state", 0)) == PRINTER_STOPPED
        rejecting = not queue.get("printer-is-accepting-jobs", True)
        device = self.probe(str(queue.get("device-uri", "")))
        if device is not None:
            fault = self._device_fault(device)
            warnings = classify_reasons(device.reasons).warnings
        else:
            verdict = classify_reasons(queue.get("printer-state-reasons"), f"CUPS queue {self.options.queue}")
            fault, warnings = verdict.fault, verdict.warnings
        if fault is not None:
            if paused:
                fault = type(fault)(f"{fault.detail} (queue {self.options.queue} stays paused until then)",
                                    **fault.context)
            log.error("A4 printer not ready: %s", fault)
            raise fault
        for warning in warnings:
            log.warning("A4 printer warning: %s (order supplies)", warning)
        if paused or rejecting:
            if device is None:
                raise PrinterOffline(f"CUPS queue {self.options.queue} is paused "
                                     f"({queue.get('printer-state-message') or 'no message'}) and the printer "
                                     f"cannot be asked directly; fix the printer, then `cupsenable "
                                     f"{self.options.queue}; cupsaccept {self.options.queue}`",
                                     queue=self.options.queue, reason="paused")
            log.warning("CUPS queue %s was %s (%s); the printer reports itself healthy, re-enabling it",
                        self.options.queue, "paused" if paused else "rejecting jobs",
                        queue.get("printer-state-message") or "no message")
            self._call("cups-enable", lambda c: c.enablePrinter(self.options.queue))
            self._call("cups-accept-jobs", lambda c: c.acceptJobs(self.options.queue))

    def print_document(self, pdf: bytes, job_name: str) -> None:
        if not JOB_NAME.fullmatch(job_name):
            raise ValueError(f"job name {job_name!r} must match {JOB_NAME.pattern}")
        if not pdf.startswith(b"%PDF-"):
            raise PrintJobFailed(f"document for job {job_name} is not a PDF; nothing was sent", job=job_name)
        job_id = self._submit(pdf, job_name)
        log.info("A4 job %s submitted as CUPS job %d on %s", job_name, job_id, self.options.queue)
        self._follow(job_id, job_name, pdf_page_count(pdf))
        log.info("A4 job %s (CUPS job %d) printed", job_name, job_id)

    def job_outcome(self, job_name: str) -> PrintOutcome:
        jobs = self._call("get-jobs", lambda c: c.getJobs(
            which_jobs="all", requested_attributes=["job-id", "job-name", "document-name-supplied",
                                                    "job-state", "job-state-reasons",
                                                    "job-printer-state-reasons"]))
        # job-name is private to the job owner in CUPS' default policy; the spool file's name is not
        mine = [job_id for job_id, attrs in jobs.items()
                if attrs.get("job-name") == job_name or attrs.get("document-name-supplied") == f"{job_name}.pdf"]
        if not mine:
            return PrintOutcome.NOT_FOUND
        attrs = jobs[max(mine)]
        return outcome_of(int(attrs.get("job-state", 0)), attrs.get("job-state-reasons"),
                          attrs.get("job-printer-state-reasons"))

    # --- one job ------------------------------------------------------------------------------------

    def _submit(self, pdf: bytes, job_name: str) -> int:
        self.spool_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        job_dir = Path(tempfile.mkdtemp(prefix=f"{job_name}-", dir=self.spool_root))  # 0700, this job's alone
        try:
            path = job_dir / f"{job_name}.pdf"
            with open(path, "xb") as fh:
                fh.write(pdf)
            options = {"media": self.options.media}
            if self.options.passthrough_pdf:
                options["raw"] = "true"
            return int(self._call("print-file",
                                  lambda c: c.printFile(self.options.queue, str(path), job_name, options)))
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)  # cupsd holds its own copy once submitted

    def _follow(self, job_id: int, job_name: str, expected_pages: int | None) -> None:
        o = self.options
        stage, stage_started = "pending", time.monotonic()
        fault_since: float | None = None
        last_probe = 0.0
        device_uri = ""
        while True:
            job = self._job(job_id)
            state = int(job.get("job-state", 0))
            if state in JOB_TERMINAL:
                return self._finish(job_id, job_name, job, expected_pages)
            now = time.monotonic()
            if state == JOB_PROCESSING and stage == "pending":
                stage, stage_started = "processing", now
            limit = o.pending_timeout if stage == "pending" else o.processing_timeout
            if now - stage_started > limit:
                self._abandon(job_id, job_name, PrintTimeout(
                    f"job {job_name} (CUPS job {job_id}) still {stage} after {limit:g} s "
                    f"({job.get('job-printer-state-message') or 'no printer message'}); it was cancelled. "
                    "Check the printer, then `kioskctl test-print a4`", job=job_name, stage=stage), pause=False)
            queue = self._queue()
            device_uri = str(queue.get("device-uri", device_uri))
            fault = classify_reasons(job.get("job-printer-state-reasons"), "the A4 printer").fault
            if now - last_probe >= o.probe_interval:
                last_probe = now
                device = self.probe(device_uri)
                # a printer that accepts the connection but does not answer is a stall: left to the timeout
                if device is not None and (device.answered or not device.reachable):
                    fault = fault or self._device_fault(device)
                    if not fault:
                        fault_since = None
            if int(queue.get("printer-state", 0)) == PRINTER_STOPPED and state in (JOB_PENDING, JOB_PROCESSING):
                self._abandon(job_id, job_name, fault or PrinterOffline(
                    f"CUPS paused queue {o.queue} during job {job_name}: "
                    f"{queue.get('printer-state-message') or 'no message'}", job=job_name, reason="paused"),
                    pause=False)
            if fault is not None:
                fault_since = fault_since or now
                if now - fault_since >= o.fault_grace:
                    self._abandon(job_id, job_name, fault, pause=True)
            time.sleep(o.poll_interval)

    def _finish(self, job_id: int, job_name: str, job: dict[str, Any], expected_pages: int | None) -> None:
        state = int(job.get("job-state", 0))
        fault = classify_reasons(job.get("job-printer-state-reasons"), "the A4 printer").fault
        if job_printed(state, job.get("job-state-reasons"), job.get("job-printer-state-reasons")):
            impressions = int(job.get("job-impressions-completed") or 0)
            if (expected_pages and impressions and not self.options.passthrough_pdf
                    and impressions != expected_pages):
                raise PrintJobFailed(f"job {job_name} (CUPS job {job_id}) completed with {impressions} of "
                                     f"{expected_pages} pages; check the printer output", job=job_name)
            return
        error = fault or PrintJobFailed(
            f"job {job_name} (CUPS job {job_id}) ended {outcome_of(state, job.get('job-state-reasons')).value} "
            f"with state {state} ({', '.join(as_list(job.get('job-state-reasons')))}): "
            f"{job.get('job-printer-state-message') or 'no printer message'}", job=job_name)
        error.context.setdefault("job", job_name)
        log.error("A4 job %s not printed: %s", job_name, error)
        if fault is not None and self.probe(str(self._queue().get("device-uri", ""))) is not None:
            self._pause(str(error))
        raise error

    def _abandon(self, job_id: int, job_name: str, error: PrinterError, *, pause: bool) -> None:
        """Cancel the job so it can never print later (the resident is refunded), then raise."""
        error.context.setdefault("job", job_name)
        log.error("A4 job %s (CUPS job %d) abandoned: %s", job_name, job_id, error)
        try:
            self._call("cancel-job", lambda c: c.cancelJob(job_id, purge_job=True))
        except PrinterError as exc:
            log.error("could not cancel CUPS job %d: %s; cancel it by hand: `cancel -x %d`", job_id, exc, job_id)
        if pause:
            self._pause(str(error))
        raise error

    def _pause(self, why: str) -> None:
        """Keep further jobs off a faulty printer; check_ready re-enables once it reports healthy."""
        try:
            self._call("cups-disable", lambda c: c.disablePrinter(self.options.queue))
            log.warning("CUPS queue %s paused: %s", self.options.queue, why)
        except PrinterError as exc:
            log.error("could not pause CUPS queue %s: %s", self.options.queue, exc)


@register("document_printer", "cups", CupsOptions)
def build_cups_printer(options: CupsOptions, context: Any) -> CupsDocumentPrinter:
    return CupsDocumentPrinter(options, context)
