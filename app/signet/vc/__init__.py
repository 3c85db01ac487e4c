"""The Desktop Virtual Card: Signet credentials as a PKCS#11 token (libsignet-vc.so) that local
applications sign and authenticate TLS with, each signature a CSC signHash on the service."""
