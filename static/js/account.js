"use strict";
(function () {
  const logout = document.getElementById("logout");
  logout.addEventListener("click", Tobira.guarded(logout, async function () {
    const result = await Tobira.postJSON("/api/logout", {});
    if (result.ok) return Tobira.go("/login");
    Tobira.show(document.getElementById("account-error"), result.data.error.message);
  }));
})();
