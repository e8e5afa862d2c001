"""ESC/POS receipt printer emulator on TCP (``kiosk-sim escpos``): parses what the kiosk sends, answers
DLE EOT status like a real printer, saves each receipt (between cuts) as a PNG, and can be told to run
out of paper, reach near end, open its cover (now or after some bytes), go offline or stall."""
