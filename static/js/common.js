// Shared by every page: JSON requests in the page's language, messages, and a guard against
// double presses (a second press while a request is in flight is ignored, never an error).
"use strict";
window.Tobira = (function () {
  const lang = document.documentElement.lang === "en" ? "en" : "ja";
  const texts = JSON.parse(document.getElementById("page-texts").textContent);

  function withLang(path) {
    if (lang !== "en") return path;
    return path + (path.includes("?") ? "&" : "?") + "lang=en";
  }

  async function request(method, path, body) {
    let response;
    try {
      response = await fetch(withLang(path), {
        method: method,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify(body || {}),
      });
    } catch (e) {
      return { ok: false, status: 0, data: { error: { code: "network", message: texts["js.network"] } } };
    }
    let data = {};
    if (response.status !== 204) {
      try { data = await response.json(); } catch (e) { data = {}; }
    }
    if (!response.ok && !(data && data.error)) {
      data = { error: { code: "network", message: texts["js.network"] } };
    }
    return { ok: response.ok, status: response.status, data: data };
  }

  const postJSON = (path, body) => request("POST", path, body);

  function show(el, text) {
    if (!el) return;
    el.textContent = text || "";
    el.hidden = !text;
  }

  // Runs `action` unless it is already running; the button says it is busy meanwhile.
  function guarded(button, action) {
    let busy = false;
    return async function (event) {
      if (event) event.preventDefault();
      if (busy) return;
      busy = true;
      button.setAttribute("aria-busy", "true");
      try { await action(event); } finally {
        busy = false;
        button.removeAttribute("aria-busy");
      }
    };
  }

  function go(path) { window.location.assign(withLang(path)); }

  document.querySelectorAll("[role=alert], [role=status]").forEach(function (el) {
    if (!el.textContent.trim()) el.hidden = true;
  });

  return { lang, texts, request, postJSON, show, guarded, go, withLang };
})();
