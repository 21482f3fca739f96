"use strict";
(function () {
  const error = document.getElementById("account-error");
  const logout = document.getElementById("logout");
  logout.addEventListener("click", Tobira.guarded(logout, async function () {
    const result = await Tobira.postJSON("/api/logout", {});
    if (result.ok) return Tobira.go("/login");
    Tobira.show(error, result.data.error.message);
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
