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

  // Lifting the password lock: a passkey step-up first (a fresh passkey login already is one).
  const unlock = document.getElementById("password-unlock");
  if (unlock) {
    unlock.addEventListener("click", Tobira.guarded(unlock, async function () {
      const unlockError = document.getElementById("password-unlock-error");
      Tobira.show(unlockError, "");
      const result = await Tobira.withStepUp(() => Tobira.postJSON("/api/account/unlock-password", {}));
      if (result === null) return;
      if (!result.ok) return Tobira.show(unlockError, result.data.error.message);
      document.getElementById("password-locked").remove();
      Tobira.show(document.getElementById("password-unlock-status"), Tobira.texts["js.password_unlocked"]);
    }));
  }

  // The invitation: one click straight into the passkey ceremony.
  const create = document.getElementById("passkey-create");
  if (create) {
    create.addEventListener("click", Tobira.guarded(create, async function () {
      const passkey = await TobiraPasskeys.add(error);
      if (passkey) Tobira.go("/account/passkeys");
    }));
  }
})();
