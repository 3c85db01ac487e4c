"""Signet as a client: sign local files through any CSC v2 service, sending only hashes.

``signet.client`` sits beside ``signet.signing``: it talks HTTP to a remote service and uses
``signet.formats`` to build the signatures locally; it never touches a key, a store or a SAM.
"""

from signet.client.csc import CscClient, CscError
from signet.client.desktop import DesktopSignRequest, Terminal, sign_file
from signet.client.plan import DesktopError

__all__ = [
    "CscClient",
    "CscError",
    "DesktopError",
    "DesktopSignRequest",
    "Terminal",
    "sign_file",
]
