// The staff console: passkey sign-in and enrolment, and every change through /api/admin.
"use strict";
(function () {
  const error = document.getElementById("console-error");
  const status = document.getElementById("console-status");
  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (_, k) => values[k]);

  function refused(result) {
    Tobira.show(error, (result.data.error && result.data.error.message) || Tobira.texts["js.network"]);
  }

  const logout = document.getElementById("staff-logout");
  if (logout) {
    logout.addEventListener("click", Tobira.guarded(logout, async function () {
      await Tobira.postJSON("/api/admin/logout", {});
      Tobira.go("/admin/login");
    }));
  }

  const login = document.getElementById("staff-login");
  if (login) {
    login.addEventListener("click", Tobira.guarded(login, async function () {
      Tobira.show(error, "");
      const options = await Tobira.postJSON("/api/admin/login/options", {});
      if (!options.ok) return refused(options);
      let credential;
      try {
        credential = await TobiraWebAuthn.get(options.data.publicKey);
      } catch (e) {
        return Tobira.show(error, Tobira.texts["js.passkey_cancelled"]);
      }
      const result = await Tobira.postJSON("/api/admin/login/verify", credential);
      if (!result.ok) return refused(result);
      Tobira.go("/admin");
    }));
  }

  const enrol = document.getElementById("enrol-form");
  if (enrol) {
    const submit = document.getElementById("enrol-submit");
    enrol.addEventListener("submit", Tobira.guarded(submit, async function () {
      Tobira.show(error, "");
      const options = await Tobira.postJSON("/api/admin/enrol/options", {
        name: enrol.elements.name.value.trim(), enrolment_code: enrol.elements.enrolment_code.value.trim(),
      });
      if (!options.ok) return refused(options);
      let credential;
      try {
        credential = await TobiraWebAuthn.create(options.data.publicKey);
      } catch (e) {
        return Tobira.show(error, Tobira.texts["js.passkey_cancelled"]);
      }
      const result = await Tobira.postJSON("/api/admin/enrol/verify", credential);
      if (!result.ok) return refused(result);
      Tobira.go("/admin");
    }));
  }

  const act = document.getElementById("action-form");
  if (act) {
    const code = document.getElementById("customer").dataset.code;
    const submit = document.getElementById("action-submit");
    act.addEventListener("submit", Tobira.guarded(submit, async function () {
      Tobira.show(error, "");
      Tobira.show(status, "");
      const body = { action: act.elements.action.value, reason: act.elements.reason.value };
      if (body.action === "set-email") body.email = act.elements.email.value.trim();
      const result = await Tobira.postJSON("/api/admin/customers/" + encodeURIComponent(code) + "/actions", body);
      if (!result.ok) return refused(result);
      act.reset();
      Tobira.show(status, Tobira.texts[result.status === 202 ? "js.console_pending" : "js.console_done"]);
    }));
  }

  document.querySelectorAll("button.approve").forEach(function (button) {
    button.addEventListener("click", Tobira.guarded(button, async function () {
      Tobira.show(error, "");
      const result = await Tobira.postJSON("/api/admin/approvals/" + encodeURIComponent(button.dataset.request), {});
      if (!result.ok) return refused(result);
      button.closest("tr").remove();
      Tobira.show(status, Tobira.texts["js.console_approved"]);
    }));
  });

  const showCode = function (name, code) {
    const shown = document.getElementById("enrolment-code-shown");
    shown.textContent = fill(Tobira.texts["js.console_code"], { name: name, code: code });
    shown.hidden = false;
    shown.focus();
  };

  const addStaff = document.getElementById("staff-add-form");
  if (addStaff) {
    const submit = document.getElementById("staff-add");
    addStaff.addEventListener("submit", Tobira.guarded(submit, async function () {
      Tobira.show(error, "");
      const result = await Tobira.postJSON("/api/admin/staff", {
        name: addStaff.elements.name.value.trim(), role: addStaff.elements.role.value,
      });
      if (!result.ok) return refused(result);
      addStaff.reset();
      showCode(result.data.name, result.data.enrolment_code);
    }));
  }
  document.querySelectorAll("button.staff-reset").forEach(function (button) {
    button.addEventListener("click", Tobira.guarded(button, async function () {
      const name = button.dataset.staff;
      const result = await Tobira.postJSON("/api/admin/staff/" + encodeURIComponent(name) + "/reset-passkeys", {});
      if (!result.ok) return refused(result);
      showCode(name, result.data.enrolment_code);
    }));
  });
  document.querySelectorAll("button.staff-disable").forEach(function (button) {
    button.addEventListener("click", Tobira.guarded(button, async function () {
      const name = button.dataset.staff;
      if (!window.confirm(fill(Tobira.texts["js.console_confirm_disable"], { name: name }))) return;
      const result = await Tobira.postJSON("/api/admin/staff/" + encodeURIComponent(name) + "/disable", {});
      if (!result.ok) return refused(result);
      Tobira.show(status, Tobira.texts["js.console_done"]);
      button.closest("td").textContent = "";
    }));
  });
})();
