"use strict";
(function () {
  const page = document.getElementById("passkeys");
  const error = document.getElementById("passkeys-error");
  const status = document.getElementById("passkeys-status");
  const addButton = document.getElementById("passkey-add");
  const dialog = document.getElementById("delete-dialog");
  const dialogBody = document.getElementById("delete-body");
  let pendingDelete = null;

  // After a change, tell the browser's passkey manager which passkeys still work here.
  function tellBrowser() {
    const ids = Array.from(document.querySelectorAll("[data-passkey-id]"), (row) => row.dataset.passkeyId);
    const user = { rpId: page.dataset.rpId, userId: page.dataset.userId };
    TobiraWebAuthn.signal("signalAllAcceptedCredentials", Object.assign({ allAcceptedCredentialIds: ids }, user));
    TobiraWebAuthn.signal("signalCurrentUserDetails",
      Object.assign({ name: page.dataset.userName, displayName: page.dataset.displayName }, user));
  }

  // Show the outcome after a reload, so the list the customer sees is the server's.
  function reloadWith(textKey) {
    sessionStorage.setItem("tobira-status", textKey);
    window.location.reload();
  }
  const carried = sessionStorage.getItem("tobira-status");
  if (carried) {
    sessionStorage.removeItem("tobira-status");
    Tobira.show(status, Tobira.texts[carried]);
    if (carried !== "js.passkey_added") tellBrowser();
  }

  addButton.addEventListener("click", Tobira.guarded(addButton, async function () {
    if (addButton.disabled) return;
    const passkey = await TobiraPasskeys.add(error);
    if (passkey) reloadWith("js.passkey_added");
  }));
  const keyButton = document.getElementById("passkey-add-key");
  keyButton.addEventListener("click", Tobira.guarded(keyButton, async function () {
    if (keyButton.disabled) return;
    const passkey = await TobiraPasskeys.add(error, { authenticator: "security-key" });
    if (passkey) reloadWith("js.passkey_added");
  }));

  document.querySelectorAll("[data-passkey-id]").forEach(function (row) {
    const form = row.querySelector(".rename-form");
    const input = form.elements.passkey_name;
    const nameLabel = row.querySelector(".passkey-name");
    const renameButton = row.querySelector("[data-action=rename]");
    const saveButton = row.querySelector("[data-action=save]");

    renameButton.addEventListener("click", function () {
      form.hidden = false;
      input.value = nameLabel.textContent;
      input.focus();
      input.select();
    });
    row.querySelector("[data-action=cancel]").addEventListener("click", function () {
      form.hidden = true;
      renameButton.focus();
    });
    // Enter in the input submits the form, so it saves too.
    form.addEventListener("submit", Tobira.guarded(saveButton, async function () {
      Tobira.show(error, "");
      const result = await Tobira.request("PATCH", "/api/passkeys/" + row.dataset.passkeyId, { name: input.value });
      if (!result.ok) return Tobira.show(error, result.data.error.message);
      nameLabel.textContent = result.data.passkey.name;
      form.hidden = true;
      Tobira.show(status, Tobira.texts["js.passkey_renamed"]);
      tellBrowser();
      renameButton.focus();
    }));

    row.querySelector("[data-action=delete]").addEventListener("click", function () {
      pendingDelete = row;
      dialogBody.textContent = dialogBody.dataset.template.replace("{name}", nameLabel.textContent);
      dialog.showModal();
    });
  });

  const confirmButton = dialog.querySelector("[data-action=confirm]");
  confirmButton.addEventListener("click", Tobira.guarded(confirmButton, async function () {
    const row = pendingDelete;
    dialog.close();
    if (!row) return;
    Tobira.show(error, "");
    const result = await Tobira.withStepUp(() => Tobira.request("DELETE", "/api/passkeys/" + row.dataset.passkeyId));
    if (result === null) return;
    if (!result.ok) return Tobira.show(error, result.data.error.message);
    row.remove();
    reloadWith("js.passkey_deleted");
  }));
  dialog.querySelector("[data-action=dismiss]").addEventListener("click", () => dialog.close());
})();
