// The passkey banner (and the restriction page): one click into creating a passkey, or, for a
// customer who has one, back to the login page to use it.
"use strict";
(function () {
  const error = document.getElementById("banner-error");
  const actions = {
    create: async function () {
      const passkey = await TobiraPasskeys.add(error);
      if (passkey) Tobira.go("/account/passkeys");
    },
    relogin: async function () {
      await Tobira.postJSON("/api/logout", {});
      Tobira.go("/login");
    },
  };
  // The banner's button and the restriction page's button do the same thing.
  document.querySelectorAll("#banner-passkey-create, #banner-relogin, [data-banner-action]").forEach(function (button) {
    const kind = button.dataset.bannerAction || (button.id === "banner-relogin" ? "relogin" : "create");
    button.addEventListener("click", Tobira.guarded(button, actions[kind]));
  });
})();
