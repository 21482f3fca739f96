// The step-up dialog: confirm it is you (a passkey, or a code by e-mail) before a sensitive change.
// Tobira.stepUp() resolves true once verified, false if the customer cancels.
"use strict";
(function () {
  const dialog = document.getElementById("step-up-dialog");
  if (!dialog) return;
  const error = document.getElementById("step-up-error");
  const status = document.getElementById("step-up-status");
  const form = document.getElementById("step-up-code-form");
  const input = document.getElementById("step-up-code");
  let finish = null;

  function done(result) {
    if (dialog.open) dialog.close();
    if (finish) finish(result);
    finish = null;
  }

  async function withPasskey() {
    Tobira.show(error, "");
    const options = await Tobira.postJSON("/api/step-up/passkey/options", {});
    if (!options.ok) return Tobira.show(error, options.data.error.message);
    let credential;
    try {
      credential = await TobiraWebAuthn.get(options.data.publicKey);
    } catch (e) {
      return Tobira.show(error, Tobira.texts["js.passkey_cancelled"]);
    }
    const result = await Tobira.postJSON("/api/step-up/passkey/verify", credential);
    if (result.ok) return done(true);
    Tobira.show(error, result.data.error.message);
  }

  async function sendCode() {
    Tobira.show(error, "");
    const result = await Tobira.postJSON("/api/step-up/code/send", {});
    if (!result.ok) return Tobira.show(error, result.data.error.message);
    form.hidden = false;
    choices.hidden = true;  // one way forward now: the code
    Tobira.show(status, Tobira.texts["js.code_sent_stepup"]);
    input.focus();
  }

  async function confirmCode() {
    Tobira.show(error, "");
    const result = await Tobira.postJSON("/api/step-up/code", { code: input.value });
    if (result.ok) return done(true);
    Tobira.show(error, result.data.error.message);
    input.select();
  }

  const choices = dialog.querySelector(".dialog-actions.stack");
  const passkeyButton = dialog.querySelector("[data-step-up=passkey]");
  const emailButton = dialog.querySelector("[data-step-up=email]");
  const confirmButton = dialog.querySelector("[data-step-up=confirm]");
  if (passkeyButton) passkeyButton.addEventListener("click", Tobira.guarded(passkeyButton, withPasskey));
  if (emailButton) emailButton.addEventListener("click", Tobira.guarded(emailButton, sendCode));
  form.addEventListener("submit", Tobira.guarded(confirmButton, confirmCode));
  dialog.querySelector("[data-step-up=cancel]").addEventListener("click", () => done(false));
  dialog.addEventListener("cancel", () => done(false));

  Tobira.stepUp = function () {
    return new Promise(function (resolve) {
      finish = resolve;
      form.hidden = true;
      choices.hidden = false;
      input.value = "";
      Tobira.show(error, "");
      Tobira.show(status, "");
      dialog.showModal();
    });
  };

  // Runs `call`; when the answer is step_up_required, asks for a step-up once and tries again.
  Tobira.withStepUp = async function (call) {
    const first = await call();
    if (first.ok || first.data.error.code !== "step_up_required") return first;
    if (!(await Tobira.stepUp())) return null;
    return call();
  };
})();
