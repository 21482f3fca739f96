// Creating a passkey: options (after a step-up if needed) -> the authenticator -> verify.
// Resolves to the new passkey's JSON, or null with the reason shown in `errorBox`.
"use strict";
window.TobiraPasskeys = (function () {
  // kind: {authenticator: "security-key"} for a roaming key (the second button); {} for this device.
  async function add(errorBox, kind) {
    Tobira.show(errorBox, "");
    if (!TobiraWebAuthn.supported()) {
      Tobira.show(errorBox, Tobira.texts["js.passkey_unsupported"]);
      return null;
    }
    const options = await Tobira.withStepUp(() => Tobira.postJSON("/api/passkeys/register/options", kind || {}));
    if (options === null) return null;
    if (!options.ok) {
      Tobira.show(errorBox, options.data.error.message);
      return null;
    }
    let credential;
    try {
      credential = await TobiraWebAuthn.create(options.data.publicKey);
    } catch (e) {
      // InvalidStateError: this authenticator already holds one of the excludeCredentials.
      const key = e && e.name === "InvalidStateError" ? "js.passkey_exists" : "js.passkey_cancelled";
      Tobira.show(errorBox, Tobira.texts[key]);
      return null;
    }
    const result = await Tobira.postJSON("/api/passkeys/register/verify", { credential: credential });
    if (!result.ok) {
      Tobira.show(errorBox, result.data.error.message);
      return null;
    }
    return result.data.passkey;
  }

  return { add };
})();
