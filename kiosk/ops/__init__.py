"""Appliance operations: what keeps a kiosk running unattended and lets a technician look after it.

    notify       the systemd notifier (READY=1, WATCHDOG=1, STATUS=, STOPPING=1) on $NOTIFY_SOCKET
    lifecycle    the run loop's helpers: engine heartbeat + health gate for the watchdog, the
                 incomplete-start marker (safe mode), the service on/off switch kioskctl flips
    release      release bundles: build, sign (Ed25519), verify before anything is touched
    update       installing a bundle into releases/<version>, the atomic `current` switch, health
                 gate, automatic rollback; update state that survives power loss
    bootguard    the pre-start step systemd runs before every kiosk start (stdlib only)
    cashbook     cash levels from the journal; refill and emptying recorded as journal events
    redact       log redaction (no personal data leaves the kiosk in logs or diagnostics)
    diagnostics  the support bundle (no personal data)

Nothing here imports drivers/, sync/ or screens/: kiosk/kioskctl.py reaches devices through kiosk.compose.
"""
