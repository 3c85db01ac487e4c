"""CSC v1 (1.0.4): the v2 operations under v1's names for their parameters and answers.

v1 calls some parameters otherwise (``hash`` for ``hashes``, ``hashAlgo`` for
``hashAlgorithmOID``), gives the second factor as ``PIN`` or ``OTP`` rather than in
``authData``, and lacks others: a parameter v1 does not have is not read, whatever the client
sends under its v2 name. Its info and credentials/info answers have shapes of their own."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from signet.web.openapi import Operation, Schema
from signet.web.params import Json, Params

SPECS = "1.0.4.0"
V2_ONLY = ("signatures/signDoc", "credentials/authorizeCheck")  # v2 has them, v1 does not
_V2_INFO = ("signAlgorithms", "signature_formats", "conformance_levels")


@dataclass(frozen=True)
class Renaming:
    """What one v2 operation reads and answers, as v1 says it. ``names`` maps a v2 parameter
    to its v1 name (None: v1 has none); ``request`` adds what v1 gives in another form, and
    ``schema`` says so in the request's JSON Schema."""

    names: Mapping[str, str | None] = field(default_factory=dict)
    request: Callable[[Json], Json] | None = None
    answer: Callable[[Json, Json], Json] | None = None  # (v2's answer, the request as sent)
    schema: Callable[[Schema], Schema] | None = None

    def params(self, data: Json) -> Params:
        return Params(self.request(data) if self.request else data, self.names)

    def answered(self, answer: Json, data: Json) -> Json:
        return self.answer(answer, data) if self.answer else answer

    def worded(self, description: str) -> str:
        """An error's description with its parameters named as v1 calls them (the use cases
        word their refusals in v2's names). A name in camelCase is renamed wherever it
        stands; a plain word (``hashes``) only where it names a parameter."""
        for v2_name, v1_name in self.names.items():
            if v1_name is None or v1_name == v2_name:
                continue
            camel = v2_name != v2_name.lower()
            pattern = rf"\b{v2_name}\b" if camel else rf"(?<=parameter ){v2_name}\b"
            description = re.sub(pattern, v1_name, description)
        return description

    def of(self, operation: Operation) -> Operation:
        """The v2 operation's description under this version's names."""
        if operation.request is None or not (self.names or self.schema):
            return operation
        properties: Schema = {}
        for name, schema in operation.request.get("properties", {}).items():
            called = self.names.get(name, name)
            if called is not None:
                properties[called] = schema
        request: Schema = {**operation.request, "properties": properties}
        required = [
            called
            for name in operation.request.get("required", [])
            if (called := self.names.get(name, name)) is not None
        ]
        if required:
            request["required"] = required
        else:
            request.pop("required", None)
        return operation.with_request(self.schema(request) if self.schema else request)


def _info(answer: Json, _data: Json) -> Json:
    """v1's info: no signature algorithms, formats or levels; only the methods v1 has."""
    common = {key: value for key, value in answer.items() if key not in _V2_INFO}
    methods = [method for method in answer["methods"] if method not in V2_ONLY]
    return {**common, "specs": SPECS, "methods": methods}


def _described_activation(data: Json) -> Json:
    """v2 is asked for its auth object whatever v1's authInfo says: v1 answers authMode
    always, and the PIN and OTP objects only when asked (authInfo, default false)."""
    Params(data).boolean("authInfo", False)  # a wrong type is refused before it is replaced
    return {**data, "authInfo": True}


def _credential_info(answer: Json, data: Json) -> Json:
    """v2's auth object as v1's authMode, and as its PIN and OTP objects if authInfo asked."""
    described = dict(answer)
    auth = described.pop("auth")
    if data.get("authInfo") is not True or auth["mode"] == "implicit":
        # implicit: Mobile ID, which v1 cannot authorize (it has no authorizeCheck)
        return {**described, "authMode": auth["mode"]}
    pin = auth["expression"] == "PIN"
    return {
        **described,
        "authMode": auth["mode"],
        "PIN": {"presence": "true" if pin else "false", "format": "N", "label": "PIN"},
        "OTP": {
            "presence": "false" if pin else "true",
            "type": "online",
            "ID": auth["objects"][0].get("generator") or "email",
            "provider": "Signet",
            "format": "N",
            "label": "OTP",
        },
    }


def _factors_schema(request: Schema) -> Schema:
    properties = dict(request["properties"])
    del properties["authData"]
    factor = {"type": "string"}
    return {**request, "properties": {**properties, "PIN": factor, "OTP": factor}}


def _factors(data: Json) -> Json:
    """v1's PIN and OTP parameters as v2's authData items (v1 has no authData)."""
    given = Params(data)
    factors = [
        {"id": factor, "value": value}
        for factor in ("PIN", "OTP")
        if (value := given.string(factor, required=False)) is not None
    ]
    return {**data, "authData": factors}


# v1's authorize, extendTransaction and sendOTP take the hashes, and no hash algorithm.
_HASHES = {"hashes": "hash", "hashAlgorithmOID": None}

RENAMED: dict[str, Renaming] = {
    "info": Renaming(answer=_info),
    "credentials/list": Renaming(
        names=dict.fromkeys(("credentialInfo", "certificates", "certInfo", "authInfo", "onlyValid"))
    ),
    "credentials/info": Renaming(request=_described_activation, answer=_credential_info),
    "credentials/sendOTP": Renaming(names=_HASHES),
    "credentials/authorize": Renaming(names=_HASHES, request=_factors, schema=_factors_schema),
    "credentials/extendTransaction": Renaming(names=_HASHES),
    "signatures/signHash": Renaming(
        names={"hashes": "hash", "hashAlgorithmOID": "hashAlgo", "operationMode": None}
    ),
    "signatures/timestamp": Renaming(names={"hashAlgorithmOID": "hashAlgo"}),
}
