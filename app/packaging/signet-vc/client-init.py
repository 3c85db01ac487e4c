"""Signet as a client, as far as the Desktop Virtual Card needs it: the CSC v2 client
(signet.client.csc). The repository's signet/client/__init__.py also imports the desktop
document signer (signet.formats, pyHanko...), which the signet-vc package does not ship."""
