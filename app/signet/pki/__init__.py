"""Certificates: the CA-connector interface, its plug-ins, and enrolment of credentials."""

from signet.pki.connector import (
    CAConnector,
    CAError,
    IssueRequest,
    load_connector,
)
from signet.pki.x509build import build_csr, describe_name

__all__ = [
    "CAConnector",
    "CAError",
    "IssueRequest",
    "build_csr",
    "describe_name",
    "load_connector",
]

from signet.pki.enrol import enrol_key
from signet.pki.local_ca import certificate_row

__all__ += ["certificate_row", "enrol_key"]
