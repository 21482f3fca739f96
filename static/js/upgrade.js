// The automatic passkey upgrade, right after a password + code login (WebAuthn L3 conditional
// create). The browser's password manager makes the passkey without a dialog when it has just
// filled the password, and declines at once otherwise; nothing is shown to the customer unless a
// passkey was made. Resolves to the new passkey's JSON, or null.
"use strict";
window.TobiraUpgrade = (function () {
  // A browser that neither creates nor declines is not waited for longer than this: the customer
  // is on the way to their account.
  const PATIENCE_MS = 5000;

  async function offer() {
    if (!(await TobiraWebAuthn.conditionalCreateAvailable())) return null;
    const options = await Tobira.postJSON("/api/passkeys/register/options", { mediation: "conditional" });
    if (!options.ok) return null;  // at the passkey limit, no e-mail on file, a step-up needed: not now
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), PATIENCE_MS);
    let credential;
    try {
      credential = await TobiraWebAuthn.create(options.data.publicKey, { mediation: "conditional", signal: stop.signal });
    } catch (e) {
      return null;  // declined, or this authenticator already holds one of the customer's passkeys
    } finally {
      clearTimeout(timer);
    }
    const result = await Tobira.postJSON("/api/passkeys/register/verify", { credential: credential });
    return result.ok ? result.data.passkey : null;
  }

  return { offer };
})();
