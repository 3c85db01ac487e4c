// Signet's OAuth 2.0 login page (docs/passkeys.md, "Logging in with a passkey"): shows the
// passkey button in a browser with WebAuthn, asks it for a discoverable passkey's assertion
// over the challenge of this page's ticket (user verification required, no user name asked)
// and sends it in the page's form. Uses passkey.js's helpers (fromB64url, assertionJSON, say);
// the server verifies everything.
"use strict";

async function logInWithPasskey(form) {
  const got = await navigator.credentials.get({
    publicKey: {
      challenge: fromB64url(form.dataset.challenge),
      rpId: form.dataset.rpId,
      userVerification: "required",
      timeout: 120000,
    },
  });
  form.elements.assertion.value = JSON.stringify(assertionJSON(got));
  form.submit();
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("passkey-login");
  if (!form || !window.PublicKeyCredential || !navigator.credentials) return;
  form.hidden = false;
  document.getElementById("passkey-login-button").addEventListener("click", () => {
    logInWithPasskey(form).catch((error) => say(`Not logged in: ${error.message}`, true));
  });
});
