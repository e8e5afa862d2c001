"""Certificate documents: rendering (A4 PDF, IPAexMincho subset, signed QR code) and verification.

Public interface shared with the city hall service (see the module docstrings for the schemes):

    CertificateRequest, RenderedDocument, DocumentSigner
    render_certificate(req, signer) -> RenderedDocument          deterministic bytes
    verify_document(pdf, public_keys) -> VerificationResult
    verify_file(path, public_keys) -> VerificationResult          for ``cityhall verify FILE.pdf``
    verify_qr_payload(text, public_keys) -> VerificationResult    for a QR read from paper
    summary(result, source) -> str                                 what the CLI prints

No document ever carries an individual number: the model refuses any 12-digit run.
"""
from __future__ import annotations

from cityhall.documents.model import (
    CERT_TYPES,
    CertificateRequest,
    CertificateRequestInvalid,
    DocumentModel,
    build_model,
)
from cityhall.documents.render import RenderedDocument, render_certificate
from cityhall.documents.signing import (
    DocumentSigner,
    key_id_for,
    load_public_keys,
    public_keys_from_pems,
)
from cityhall.documents.verify import (
    VerificationResult,
    summary,
    verify_document,
    verify_file,
    verify_qr_payload,
)

__all__ = [
    "CERT_TYPES", "CertificateRequest", "CertificateRequestInvalid", "DocumentModel", "DocumentSigner",
    "RenderedDocument", "VerificationResult", "build_model", "key_id_for", "load_public_keys",
    "public_keys_from_pems", "render_certificate", "summary", "verify_document", "verify_file",
    "verify_qr_payload",
]
