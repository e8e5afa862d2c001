"""Virtual My Number card (JPKI) behind pcscd's vpcd reader: ``card`` is the card's logic,
``simulator`` the process (vpcd link, APDU log, faults, control port), ``control`` its client,
``sign_pki`` the signature-side test certificates, ``cli`` the `kiosk-sim card` command."""
