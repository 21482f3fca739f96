// /account/devices: log out one browser, every other one, or forget a remembered PC; then reload.
"use strict";
(function () {
  const error = document.getElementById("devices-error");

  async function act(button, method, path, after) {
    const result = await Tobira.request(method, path);
    if (!result.ok) {
      Tobira.show(error, result.data.error.message);
      return;
    }
    after();
  }

  document.querySelectorAll("[data-action=end-session]").forEach(function (button) {
    const row = button.closest("[data-session-id]");
    button.addEventListener("click", Tobira.guarded(button, () => act(button, "DELETE",
      "/api/sessions/" + encodeURIComponent(row.dataset.sessionId),
      () => row.dataset.current ? Tobira.go("/login") : window.location.reload())));
  });
  const others = document.getElementById("end-others");
  if (others) {
    others.addEventListener("click", Tobira.guarded(others, () => act(others, "POST", "/api/sessions/end-others",
      () => window.location.reload())));
  }
  document.querySelectorAll("[data-action=forget-device]").forEach(function (button) {
    const row = button.closest("[data-device-id]");
    button.addEventListener("click", Tobira.guarded(button, () => act(button, "DELETE",
      "/api/trusted-devices/" + encodeURIComponent(row.dataset.deviceId), () => window.location.reload())));
  });
})();
