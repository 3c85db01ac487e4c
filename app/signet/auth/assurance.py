"""Levels of assurance: each authentication method classified (factor kind, the eIDAS level and
NIST SP 800-63B AAL it can support), the level a set of methods reaches together, and whether
that meets a credential's policy. The table and its rationale are in docs/assurance.md."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from signet.config.assurance import EIDAS_LEVELS, PolicySettings

KNOWLEDGE, POSSESSION, INHERENCE = "knowledge", "possession", "inherence"
# ISO/IEC 29115 (ITU-T X.1254) level that matches each eIDAS level (LoA2/3/4).
ISO_29115 = {"low": 2, "substantial": 3, "high": 4}


@dataclass(frozen=True)
class Method:
    """One way of authenticating, as access tokens and audit records name it."""

    name: str
    label: str
    kinds: tuple[str, ...]  # factor kinds it proves (two for a multi-factor authenticator)
    eidas_cap: str  # the highest eIDAS level a combination relying on it can reach
    aal_cap: int  # the highest AAL it may take part in; 0: not an 800-63B authenticator
    activates: bool  # a credential's own factor at credentials/authorize (else: login)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("pwd", "password", (KNOWLEDGE,), "high", 3, activates=False),
        Method("pin", "credential PIN", (KNOWLEDGE,), "high", 3, activates=True),
        # 800-63B 5.1.3.1: e-mail does not prove possession of a device; it is no
        # out-of-band authenticator. eIDAS: a mailbox anyone with its password opens anywhere.
        Method("email_otp", "e-mail one-time code", (POSSESSION,), "low", 0, activates=True),
        # 800-63B 5.1.3.3: the phone network is a restricted authenticator, at most AAL2.
        Method("sms_otp", "SMS one-time code", (POSSESSION,), "substantial", 2, activates=True),
        # 800-63B 5.1.8: a key in software is a single-factor cryptographic authenticator
        # (AAL2 with another factor, never AAL3: the key can be copied off the device).
        Method("x509", "client certificate", (POSSESSION,), "substantial", 2, activates=False),
        # 800-63B 5.1.9: a key the card keeps, used after the card checked its PIN, is a
        # multi-factor cryptographic device; TLS client authentication resists verifier
        # impersonation. Only certificates the CA marks so (policy OID, QcSSCD) count.
        Method(
            "x509_card",
            "client certificate on a card (PIN)",
            (POSSESSION, KNOWLEDGE),
            "high",
            3,
            activates=False,
        ),
        # A P-256 device key unlocked on the phone: possession (the PIN or biometric stays on
        # the device and is not verified by Signet). Without verified attestation nothing
        # proves the key is hardware-held: substantial and AAL2 at most (docs/assurance.md).
        Method("mobile_id", "Mobile ID approval", (POSSESSION,), "substantial", 2, activates=True),
        # A login at a federated identity provider (OpenID Connect, SAML 2.0) is credited with
        # the eIDAS level its authentication context maps to ([identity.providers], operator's
        # mapping): Regulation 2015/1502 asks two factor kinds of substantial and high, and
        # SP 800-63C lets the IdP assert the AAL it performed.
        Method("idp_low", "identity provider (low)", (KNOWLEDGE,), "low", 1, activates=False),
        Method(
            "idp_substantial",
            "identity provider (substantial)",
            (KNOWLEDGE, POSSESSION),
            "substantial",
            2,
            activates=False,
        ),
        Method(
            "idp_high",
            "identity provider (high)",
            (KNOWLEDGE, POSSESSION),
            "high",
            3,
            activates=False,
        ),
        # A WebAuthn passkey asserting user verification: 800-63B-4 counts a syncable
        # authenticator at AAL2 at most; the UV flag is the authenticator's own word unless
        # attestation (not verified here) proves its make, so it counts as no second kind.
        Method("passkey", "passkey (WebAuthn)", (POSSESSION,), "substantial", 2, activates=True),
        # The same passkey as a login (Signet's pages): the same reasoning, the same row. It
        # is no second kind with a passkey approval (two possessions), one with a PIN.
        Method(
            "passkey_login",
            "passkey login (WebAuthn)",
            (POSSESSION,),
            "substantial",
            2,
            activates=False,
        ),
    )
}
# A credential's activation setting -> the method it uses at credentials/authorize.
ACTIVATION_METHOD = {
    "pin": "pin",
    "otp": "email_otp",
    "sms_otp": "sms_otp",
    "mobile_id": "mobile_id",
    "passkey": "passkey",
}
# How users may log in (to get the access token an authorization starts from).
LOGIN_METHODS = tuple(m.name for m in METHODS.values() if not m.activates)


@dataclass(frozen=True)
class Level:
    """What a set of methods reaches together."""

    methods: tuple[str, ...]
    factors: int  # distinct factor kinds
    eidas: str
    aal: int
    iso: int

    def describe(self) -> str:
        labels = " + ".join(METHODS[m].label for m in self.methods) or "nothing"
        return f"eIDAS {self.eidas}, AAL{self.aal}, {self.factors} factor kind(s) ({labels})"


def _pair_cap(caps: dict[str, int]) -> int | None:
    """The best two distinct kinds' weaker cap, or None with fewer than two kinds."""
    ranked = sorted(caps.values(), reverse=True)
    return ranked[1] if len(ranked) > 1 else None


def reached(methods: Iterable[str]) -> Level:
    """The level of an authentication made with all of `methods` (unknown names count for
    nothing). One kind of factor is eIDAS low and AAL1 at most; two kinds reach the weaker of
    the two best kinds' caps (eIDAS substantial and high, AAL2 and 3, need two kinds)."""
    known = tuple(dict.fromkeys(m for m in methods if m in METHODS))
    eidas: dict[str, int] = {}
    aal: dict[str, int] = {}
    for name in known:
        method = METHODS[name]
        for kind in method.kinds:
            eidas[kind] = max(eidas.get(kind, 0), EIDAS_LEVELS.index(method.eidas_cap))
            if method.aal_cap:
                aal[kind] = max(aal.get(kind, 0), method.aal_cap)
    eidas_pair = _pair_cap(eidas)
    level = EIDAS_LEVELS[eidas_pair] if eidas_pair is not None else "low"
    aal_pair = _pair_cap(aal)
    return Level(
        methods=known,
        factors=len(eidas),
        eidas=level,
        aal=max(aal_pair or 0, 1) if aal else 0,
        iso=ISO_29115[level] if known else 1,
    )


def shortfall(policy: PolicySettings, level: Level) -> list[str]:
    """What `level` lacks for `policy`, in words; empty when it meets it."""
    missing = []
    if level.factors < policy.factors:
        missing.append(f"{policy.factors} factor kinds (has {level.factors})")
    if EIDAS_LEVELS.index(level.eidas) < EIDAS_LEVELS.index(policy.eidas):
        missing.append(f"eIDAS {policy.eidas} (has {level.eidas})")
    if level.aal < policy.aal:
        missing.append(f"NIST AAL{policy.aal} (has AAL{level.aal})")
    return missing


def step_ups(policy: PolicySettings, login: Iterable[str]) -> list[str]:
    """The activations (as credentials name them: otp, sms_otp, pin, mobile_id, passkey) whose
    factor, after this login, would meet `policy`."""
    logged = tuple(login)
    return [
        activation
        for activation, method in ACTIVATION_METHOD.items()
        if not shortfall(policy, reached((*logged, method)))
    ]


def token_methods(methods: str) -> tuple[str, ...]:
    """The methods of an access token's `auth_methods` (space-separated)."""
    return tuple(methods.split())
