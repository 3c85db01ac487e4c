#!/usr/bin/env python3
"""Run csctester (github.com/vincent-vega/csctester, an independent CSC v1 test client) against
a live Signet, without a terminal; docs/csc.md "Independent conformance check" says how.

csctester is not part of Signet: fetch it yourself and give the path of its csctester3.py.
It needs requests and click (Signet's venv has both). It is driven, not changed:

1. its own `check` flow (info, an unknown method, login, timestamp, list, then for each of the
   user's credentials info, sendOTP, authorize, extendTransaction and revoke), answering its
   prompts here: the OTP is read from the Maildir the service delivers to, the PIN is its
   default (12345678, so activate the PIN credential with it);
2. it authorizes without hashes, which a SCAL2 service refuses, so it never signs: here each
   credential is authorized for the hashes its signHash checks send, and that SAD is handed to
   its own extend_test and sign_hash_test;
3. its credentials/info and authorize checks again, one rule at a time, so that a failed check
   shows which of its rules failed.

Usage: csctester-drive.py CSCTESTER3_PY BASE_URL USER PASSWORD MAILDIR ADDRESS
(BASE_URL such as http://127.0.0.1:8080/csc/v1).
"""

from __future__ import annotations

import builtins
import copy
import importlib.util
import json
import mailbox
import re
import sys
import time
from typing import Any

import requests


def load_tool(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("csctester3", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def newest_otp(maildir: str, address: str, after: float) -> str:
    """The newest one-time code mailed to `address` since `after`, as a mail program sees it."""
    for _ in range(50):
        found = []
        for message in mailbox.Maildir(maildir, create=False):
            if message.get("To") != address or "activ" in str(message.get("Subject")).lower():
                continue
            payload = message.get_payload(decode=True)
            text = payload.decode() if isinstance(payload, bytes) else ""
            code = re.search(r"^\s*(\d{6,8})\s*$", text, re.M)
            if code and message.get_date() >= after:
                found.append((message.get_date(), code.group(1)))
        if found:
            return max(found)[1]
        time.sleep(0.2)
    raise SystemExit(f"no one-time code mailed to {address} in {maildir}")


def main(tool_path: str, base: str, user: str, password: str, maildir: str, address: str) -> int:
    tool = load_tool(tool_path)
    started = time.time() - 1

    def answer(prompt: str = "") -> str:
        print(prompt, end="")
        if "OTP" in prompt:
            code = newest_otp(maildir, address, started)
            print(f"<driver: OTP {code} from the Maildir>")
            return code
        print("<driver: y>")
        return "y"

    tool.input = answer
    builtins.input = answer
    tool.getpass.getpass = lambda prompt="": print(prompt + "<driver: default PIN>") or ""

    csc = tool.CSC(user, password, context=base, quiet=False)
    print("=== 1: csctester's check flow ===")
    try:
        csc.global_test()
    except SystemExit as stop:
        print("global_test stopped with", stop.code)

    print("=== 2: a SCAL2 SAD handed to its extend_test and sign_hash_test ===")
    known = tool.CSC
    csc.session_key = csc._get_session_key()
    auth = {"Authorization": "Bearer " + csc.session_key}
    for credential in csc.list_utility(64):
        _valid, _mode, pin, otp, _otp_type, algos = csc.get_credential_info(credential)
        hashes: list[str] = []
        if known.ALGO_SHA256_WITH_RSA_ENC in algos:
            hashes += [known.HASH_SHA256_VALUE]
        if known.ALGO_SHA384_WITH_RSA_ENC in algos:
            hashes += [known.HASH_SHA384_VALUE] * 3
        if known.ALGO_SHA512_WITH_RSA_ENC in algos:
            hashes += [known.HASH_SHA512_VALUE]
        if known.ALGO_RSASSA_PSS in algos:
            hashes += [known.HASH_SHA256_VALUE] * 3
        if not hashes:
            print(f"{credential}: none of csctester's signHash checks fits its algorithms")
            continue
        body: dict[str, Any] = {"credentialID": credential, "numSignatures": len(hashes)}
        body["hash"] = hashes
        if pin:
            body["PIN"] = csc.DEFAULT_PIN
        if otp:
            sent = time.time() - 1
            requests.post(
                base + "/credentials/sendOTP",
                json={"credentialID": credential},
                headers=auth,
                timeout=30,
            )
            body["OTP"] = newest_otp(maildir, address, sent)
        authorized = requests.post(
            base + "/credentials/authorize", json=body, headers=auth, timeout=30
        )
        print(f"driver: authorize {credential} for {len(hashes)} hashes: {authorized.status_code}")
        sad = authorized.json().get("SAD")
        if not sad:
            print(authorized.text)
            continue
        try:
            csc.extend_test(sad, credential)
        except RuntimeError as refused:
            print("extend_test:", refused)
        csc.sign_hash_test(sad, credential, algos)

    print("=== 3: its credentials/info and authorize checks, one rule at a time ===")
    whole = tool.CSC._generic_test

    def per_rule(self: Any, cfg: dict[str, Any]) -> list[Any]:
        answers = []  # one answer per test (its first request), as the caller expects
        for test in cfg["tests"]:
            first = None
            for rule in test["exp_result"]:
                one = copy.deepcopy(test)
                one["exp_result"] = [rule]
                one["name"] = (
                    f"{test.get('name', '')} :: {rule['condition']} " + json.dumps(rule["arg"])[:90]
                )
                answered = whole(self, {"service": cfg["service"], "tests": [one]})
                first = answered[0] if first is None and answered else first
            answers.append(first or {})
        return answers

    tool.CSC._generic_test = per_rule
    csc.session_key = csc._get_session_key()
    for credential in csc.list_utility(64):
        valid, mode, pin, otp, otp_type, _algos = csc.get_credential_info(credential)
        csc.credentials_info_test(credential, mode)
        if pin and not otp:
            try:
                csc.authorize_test(credential, mode, pin, otp, otp_type, 17, valid)
            except RuntimeError as refused:
                print("authorize_test:", refused)
    print("csctester error level:", csc.error_level)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 7:
        raise SystemExit(__doc__)
    raise SystemExit(main(*sys.argv[1:]))
