"""pyHanko Signer whose raw signature comes from the remote key's sign_digest callable."""

from __future__ import annotations

from typing import Any

from asn1crypto import algos, cms
from pyhanko.sign.signers.pdf_cms import Signer
from pyhanko_certvalidator.registry import SimpleCertificateStore

from signet.formats.keys import RemoteKey, pyca_hash, sign_message


def signature_mechanism(key: RemoteKey, hash_name: str, scheme: str) -> algos.SignedDigestAlgorithm:
    """The CMS signatureAlgorithm for (key, hash, scheme); PSS salt = digest length."""
    pyca_hash(hash_name)
    if scheme == "ecdsa":
        return algos.SignedDigestAlgorithm({"algorithm": f"{hash_name}_ecdsa"})
    if scheme == "pss":
        params = algos.RSASSAPSSParams(
            {
                "hash_algorithm": algos.DigestAlgorithm({"algorithm": hash_name}),
                "mask_gen_algorithm": algos.MaskGenAlgorithm(
                    {
                        "algorithm": "mgf1",
                        "parameters": algos.DigestAlgorithm({"algorithm": hash_name}),
                    }
                ),
                "salt_length": pyca_hash(hash_name).digest_size,
                "trailer_field": "trailer_field_bc",
            }
        )
        return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pss", "parameters": params})
    return algos.SignedDigestAlgorithm({"algorithm": f"{hash_name}_rsa"})


class RemoteCMSSigner(Signer):
    """Signs CMS signed attributes by hashing them here and calling ``key.sign_digest`` once.

    pyHanko's dry runs (signature-size estimates for PDF) get a placeholder and never reach
    the key: a SAD authorises an exact number of signatures.
    """

    def __init__(self, key: RemoteKey, hash_name: str, scheme: str, embed_roots: bool = True):
        self.key = key
        self.hash_name = hash_name
        self.scheme = key.resolve_scheme(scheme)
        self.sign_calls = 0
        self.signed_size: int | None = None  # bytes of the last CMS signed for real
        super().__init__(
            signing_cert=key.certificate,
            cert_registry=SimpleCertificateStore.from_certs(list(key.chain)),
            signature_mechanism=signature_mechanism(key, hash_name, self.scheme),
            embed_roots=embed_roots,
        )

    async def async_sign(  # type: ignore[override]
        self,
        data_digest: bytes,
        digest_algorithm: str,
        dry_run: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> cms.ContentInfo:
        signed = await super().async_sign(data_digest, digest_algorithm, dry_run, *args, **kwargs)
        if not dry_run:
            self.signed_size = len(signed.dump())  # what PAdES may reserve next time
        return signed

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        if dry_run:
            return bytes(self.key.signature_size())
        self.sign_calls += 1
        return sign_message(self.key, data, digest_algorithm, self.scheme)
