"use strict";
(function () {
  const form = document.getElementById("login-form");
  const submit = document.getElementById("login-submit");
  const error = document.getElementById("login-error");

  form.addEventListener("submit", Tobira.guarded(submit, async function () {
    Tobira.show(error, "");
    const body = {
      customer_code: form.elements.customer_code.value.trim(),
      password: form.elements.password.value,
    };
    if (form.dataset.next) body.next = form.dataset.next;
    const result = await Tobira.postJSON("/api/login/password", body);
    if (result.ok && result.data.status === "code_sent") return Tobira.go("/login/code");
    if (result.ok && result.data.status === "ok") return Tobira.go(result.data.redirect || "/account");
    Tobira.show(error, (result.data.error && result.data.error.message) || Tobira.texts["js.network"]);
    form.elements.password.value = "";
    form.elements.password.focus();
  }));
})();
