// The passkey banner (and the restriction page): one click into creating a passkey, or, for a
// customer who has one, back to the login page to use it.
"use strict";
(function () {
  const error = document.getElementById("banner-error");
  const create = document.getElementById("banner-passkey-create");
  if (create) {
    create.addEventListener("click", Tobira.guarded(create, async function () {
      const passkey = await TobiraPasskeys.add(error);
      if (passkey) Tobira.go("/account/passkeys");
    }));
  }
  const relogin = document.getElementById("banner-relogin");
  if (relogin) {
    relogin.addEventListener("click", Tobira.guarded(relogin, async function () {
      await Tobira.postJSON("/api/logout", {});
      Tobira.go("/login");
    }));
  }
})();
