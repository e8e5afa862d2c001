"""Starting the emulated world's services — pcscd with the virtual reader, a private cupsd with an IPP
printer, and the generic ManagedProcess — shared by the tests (tests/support re-exports these) and by
the demo (drivers/sim/demo.py). Everything started is stopped by its own pid."""
