"use strict";
(function () {
  const form = document.getElementById("code-form");
  const submit = document.getElementById("code-submit");
  const resend = document.getElementById("code-resend");
  const error = document.getElementById("code-error");
  const status = document.getElementById("code-status");

  // Logged in. Where the browser can, a passkey is made now without a dialog (the automatic
  // upgrade); the customer is told when one was, and goes on with one key press.
  async function afterLogin(redirect) {
    const passkey = await TobiraUpgrade.offer();
    if (!passkey) return Tobira.go(redirect);
    const panel = document.getElementById("passkey-upgraded");
    document.getElementById("passkey-upgraded-name").textContent = passkey.name;
    document.getElementById("code-card").hidden = true;
    panel.hidden = false;
    const next = document.getElementById("passkey-upgraded-continue");
    next.addEventListener("click", () => Tobira.go(redirect));
    next.focus();
  }

  form.addEventListener("submit", Tobira.guarded(submit, async function () {
    Tobira.show(error, "");
    Tobira.show(status, "");
    const remember = form.elements.remember_device;
    const result = await Tobira.postJSON("/api/login/code", {
      code: form.elements.code.value,
      remember_device: Boolean(remember && remember.checked),
    });
    if (result.ok) return afterLogin(result.data.redirect || "/account");
    const failure = result.data.error || {};
    if (failure.code === "no_pending_login") return Tobira.go("/login");
    Tobira.show(error, failure.message || Tobira.texts["js.network"]);
    form.elements.code.select();
    form.elements.code.focus();
  }));

  resend.addEventListener("click", Tobira.guarded(resend, async function () {
    Tobira.show(error, "");
    Tobira.show(status, "");
    const result = await Tobira.postJSON("/api/login/code/resend", {});
    if (result.ok) {
      form.elements.code.value = "";
      form.elements.code.focus();
      return Tobira.show(status, Tobira.texts["js.code_sent"]);
    }
    const failure = result.data.error || {};
    if (failure.code === "no_pending_login") return Tobira.go("/login");
    Tobira.show(error, failure.message || Tobira.texts["js.network"]);
  }));
})();
