"use strict";
(function () {
  const form = document.getElementById("login-form");
  const submit = document.getElementById("login-submit");
  const error = document.getElementById("login-error");
  const passkeyButton = document.getElementById("passkey-login");
  const next = form.dataset.next;
  let autofill = null; // the AbortController of the conditional (autofill) request

  form.addEventListener("submit", Tobira.guarded(submit, async function () {
    Tobira.show(error, "");
    const body = {
      customer_code: form.elements.customer_code.value.trim(),
      password: form.elements.password.value,
    };
    if (next) body.next = next;
    const result = await Tobira.postJSON("/api/login/password", body);
    if (result.ok && result.data.status === "code_sent") return Tobira.go("/login/code");
    if (result.ok && result.data.status === "ok") return Tobira.go(result.data.redirect || "/account");
    Tobira.show(error, (result.data.error && result.data.error.message) || Tobira.texts["js.network"]);
    form.elements.password.value = "";
    form.elements.password.focus();
  }));

  // One passkey login: options -> authenticator -> verify. mediation "conditional" is the
  // autofill on the customer-code field; it fails silently, the button's request does not.
  // One options request at a time: a browser with no session yet gets one with the first answer,
  // and the next request must carry that cookie, or its ceremony would belong to another session.
  let optionsInFlight = Promise.resolve();
  function fetchOptions() {
    const request = optionsInFlight.then(() => Tobira.postJSON("/api/login/passkey/options", next ? { next: next } : {}));
    optionsInFlight = request.catch(() => null);
    return request;
  }

  async function passkeyLogin(mediation, signal) {
    const options = await fetchOptions();
    if (!options.ok) {
      if (!mediation) Tobira.show(error, options.data.error.message);
      return;
    }
    let credential;
    try {
      credential = await TobiraWebAuthn.get(options.data.publicKey, mediation ? { mediation, signal } : {});
    } catch (e) {
      if (mediation) return;  // the autofill was aborted or dismissed: nothing to say
      if (!(e && e.name === "AbortError")) Tobira.show(error, Tobira.texts["js.passkey_cancelled"]);
      startAutofill();
      return;
    }
    Tobira.show(error, "");
    const result = await Tobira.postJSON("/api/login/passkey/verify", credential);
    if (result.ok) return Tobira.go(result.data.redirect || "/account");
    const failure = result.data.error || {};
    if (failure.code === "unknown_credential" && failure.credential_id) {
      // Only on a definite "unknown": the browser deletes the passkey from the device for good.
      TobiraWebAuthn.signal("signalUnknownCredential",
        { rpId: options.data.publicKey.rpId, credentialId: failure.credential_id });
    }
    Tobira.show(error, failure.message || Tobira.texts["js.network"]);
    startAutofill();  // offer the passkeys in the customer-code field again
  }

  async function startAutofill() {
    if (!(await TobiraWebAuthn.conditionalAvailable())) return;
    autofill = new AbortController();
    passkeyLogin("conditional", autofill.signal);
  }

  passkeyButton.addEventListener("click", Tobira.guarded(passkeyButton, async function () {
    if (!TobiraWebAuthn.supported()) return Tobira.show(error, Tobira.texts["js.passkey_unsupported"]);
    if (autofill) autofill.abort(); // only one WebAuthn request may be pending
    autofill = null;
    await passkeyLogin(null);
  }));

  startAutofill();
})();
