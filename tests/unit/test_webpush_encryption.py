"""RFC 8291's own example (section 5): Signet's Web Push encryption, given the example's salt
and application-server key, produces the example's message byte for byte."""

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signet.notify.webpush import encrypt


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


PLAINTEXT = b"When I grow up, I want to be a watermelon"
AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
UA_PUBLIC = (
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
)
AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
SALT = "DGv6ra1nlYgDCS1FRnbzlw"
MESSAGE = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS"
    "6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qu"
    "lcy4a-fN"
)


def test_the_rfc_8291_example_is_reproduced():
    sender = ec.derive_private_key(int.from_bytes(unb64url(AS_PRIVATE), "big"), ec.SECP256R1())
    body = encrypt(
        PLAINTEXT, unb64url(UA_PUBLIC), unb64url(AUTH), salt=unb64url(SALT), sender=sender
    )
    assert body == unb64url(MESSAGE)


def test_fresh_salt_and_key_each_time():
    receiver = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = receiver.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    first, second = encrypt(b"x", point, b"\0" * 16), encrypt(b"x", point, b"\0" * 16)
    assert first[:16] != second[:16] and first[21:86] != second[21:86]
