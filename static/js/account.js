"use strict";
(function () {
  const error = document.getElementById("account-error");
  const logout = document.getElementById("logout");
  logout.addEventListener("click", Tobira.guarded(logout, async function () {
    const result = await Tobira.postJSON("/api/logout", {});
    if (result.ok) return Tobira.go("/login");
    Tobira.show(error, result.data.error.message);
  }));

  // Changing the e-mail is an important operation: a step-up may be asked for first.
  const emailForm = document.getElementById("email-form");
  const emailSubmit = document.getElementById("email-submit");
  emailForm.addEventListener("submit", Tobira.guarded(emailSubmit, async function () {
    Tobira.show(error, "");
    const email = emailForm.elements.email.value.trim();
    const result = await Tobira.withStepUp(() => Tobira.postJSON("/api/account/email", { email: email }));
    if (result === null) return;
    if (!result.ok) return Tobira.show(error, result.data.error.message);
    Tobira.show(document.getElementById("email-status"), Tobira.texts["js.email_changed"]);
    emailForm.reset();
  }));

  // The invitation: one click straight into the passkey ceremony.
  const create = document.getElementById("passkey-create");
  if (create) {
    create.addEventListener("click", Tobira.guarded(create, async function () {
      const passkey = await TobiraPasskeys.add(error);
      if (passkey) Tobira.go("/account/passkeys");
    }));
  }
})();
