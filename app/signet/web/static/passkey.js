// Signet's passkey pages: the WebAuthn calls of /passkey/v1/register and /passkey/v1/approve
// (docs/passkeys.md). No framework, no other origin; every value the server needs is posted
// as base64url, and the server verifies everything.
"use strict";

function toB64url(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromB64url(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function say(text, failed) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = failed ? "error" : "done";
}

async function postJSON(url, payload) {
  const answer = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(payload),
    credentials: "omit",
  });
  const json = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error(json.error_description || `refused (${answer.status})`);
  return json;
}

function attestationJSON(made) {
  return {
    id: made.id,
    rawId: toB64url(made.rawId),
    type: made.type,
    response: {
      clientDataJSON: toB64url(made.response.clientDataJSON),
      attestationObject: toB64url(made.response.attestationObject),
      transports: made.response.getTransports ? made.response.getTransports() : [],
    },
    clientExtensionResults: made.getClientExtensionResults(),
  };
}

function assertionJSON(got) {
  return {
    id: got.id,
    rawId: toB64url(got.rawId),
    type: got.type,
    response: {
      clientDataJSON: toB64url(got.response.clientDataJSON),
      authenticatorData: toB64url(got.response.authenticatorData),
      signature: toB64url(got.response.signature),
      userHandle: got.response.userHandle ? toB64url(got.response.userHandle) : null,
    },
    clientExtensionResults: got.getClientExtensionResults(),
  };
}

async function register(form) {
  const field = (name) => form.elements[name].value;
  const login = {
    credentialID: form.dataset.credential,
    username: field("username"),
    password: field("password"),
  };
  const options = await postJSON("/passkey/v1/register/options", login);
  const publicKey = options.publicKey;
  publicKey.challenge = fromB64url(publicKey.challenge);
  publicKey.user.id = fromB64url(publicKey.user.id);
  for (const excluded of publicKey.excludeCredentials || []) excluded.id = fromB64url(excluded.id);
  const made = await navigator.credentials.create({ publicKey });
  const done = await postJSON("/passkey/v1/register", {
    ...login,
    activationCode: field("code"),
    label: field("label"),
    challenge: options.challenge,
    credential: attestationJSON(made),
  });
  say(`Passkey registered: credential ${done.credentialID} is active.`, false);
}

async function decide(box, decision) {
  const got = await navigator.credentials.get({
    publicKey: {
      challenge: fromB64url(box.dataset[decision]),
      rpId: box.dataset.rpId,
      allowCredentials: [{ type: "public-key", id: fromB64url(box.dataset.credential) }],
      userVerification: "required",
      timeout: 120000,
    },
  });
  const done = await postJSON(`/passkey/v1/approve/${box.dataset.request}`, {
    decision,
    credential: assertionJSON(got),
  });
  for (const button of box.querySelectorAll("button")) button.disabled = true;
  say(done.state === "approved" ? "Approved: the signature goes ahead." : "Denied.", false);
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("passkey-register");
  if (form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      register(form).catch((error) => say(`Not registered: ${error.message}`, true));
    });
  }
  const box = document.getElementById("passkey-approve");
  if (box) {
    for (const button of box.querySelectorAll("button")) {
      button.addEventListener("click", () => {
        decide(box, button.dataset.decision).catch((error) => say(`Not done: ${error.message}`, true));
      });
    }
  }
});
