// Signet's OAuth 2.0 approval page (docs/oauth2.md): polls the state of the request the
// user's device is asked to approve and sends the page's form once it is decided; for a
// passkey, asks the browser for the assertion over the request's challenge and sends it in
// the form. Uses passkey.js's helpers (fromB64url, assertionJSON, say); the server verifies
// everything.
"use strict";

const POLL_MS = 2000;

async function approvalState(form) {
  const answer = await fetch(form.dataset.status, {
    method: "POST",
    body: new URLSearchParams({ ticket: form.elements.ticket.value }),
    credentials: "same-origin",
  });
  const json = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error(json.error_description || `refused (${answer.status})`);
  return json.status;
}

function poll(form) {
  const tick = () => {
    approvalState(form)
      .then((status) => {
        if (status === "pending") setTimeout(tick, POLL_MS);
        else form.submit(); // decided: the server says what comes next
      })
      .catch((error) => say(`Press Continue once approved (${error.message})`, true));
  };
  setTimeout(tick, POLL_MS);
}

async function usePasskey(form) {
  const got = await navigator.credentials.get({
    publicKey: {
      challenge: fromB64url(form.dataset.challenge),
      rpId: form.dataset.rpId,
      allowCredentials: [{ type: "public-key", id: fromB64url(form.dataset.credential) }],
      userVerification: "required",
      timeout: 120000,
    },
  });
  form.elements.assertion.value = JSON.stringify(assertionJSON(got));
  form.submit();
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("oauth2-approval");
  if (!form || !form.dataset.waiting) return;
  poll(form);
  const button = document.getElementById("use-passkey");
  if (button) {
    button.addEventListener("click", () => {
      usePasskey(form).catch((error) => say(`Not approved: ${error.message}`, true));
    });
  }
});
