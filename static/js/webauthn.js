// WebAuthn Level 3 JSON forms <-> navigator.credentials. Browsers that have
// parseCreationOptionsFromJSON / parseRequestOptionsFromJSON / toJSON use them; others get the
// small fallback below (base64url <-> ArrayBuffer, nothing more).
"use strict";
window.TobiraWebAuthn = (function () {
  function decode(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer;
  }

  function encode(buffer) {
    const bytes = new Uint8Array(buffer);
    let bin = "";
    for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  const descriptors = (list) => (list || []).map((d) => Object.assign({}, d, { id: decode(d.id) }));

  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    return Object.assign({}, json, {
      challenge: decode(json.challenge),
      user: Object.assign({}, json.user, { id: decode(json.user.id) }),
      excludeCredentials: descriptors(json.excludeCredentials),
    });
  }

  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    return Object.assign({}, json, {
      challenge: decode(json.challenge),
      allowCredentials: descriptors(json.allowCredentials),
    });
  }

  function toJSON(credential) {
    if (typeof credential.toJSON === "function") return credential.toJSON();
    const r = credential.response;
    const json = {
      id: credential.id, rawId: encode(credential.rawId), type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: encode(r.clientDataJSON) },
    };
    if (r.attestationObject) {
      json.response.attestationObject = encode(r.attestationObject);
      json.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      json.response.authenticatorData = encode(r.authenticatorData);
      json.response.signature = encode(r.signature);
      json.response.userHandle = r.userHandle ? encode(r.userHandle) : null;
    }
    return json;
  }

  const supported = () => Boolean(window.PublicKeyCredential && navigator.credentials);

  async function conditionalAvailable() {
    return supported() && typeof PublicKeyCredential.isConditionalMediationAvailable === "function" &&
      await PublicKeyCredential.isConditionalMediationAvailable();
  }

  // extra: {mediation: "conditional", signal} for the automatic upgrade; nothing for a button press.
  async function create(publicKey, extra) {
    const request = Object.assign({ publicKey: creationOptions(publicKey) }, extra || {});
    return toJSON(await navigator.credentials.create(request));
  }

  // WebAuthn L3: whether this browser may create a passkey without a dialog right after its
  // password manager filled a password (a conditional create).
  async function conditionalCreateAvailable() {
    if (!supported() || typeof PublicKeyCredential.getClientCapabilities !== "function") return false;
    try {
      return (await PublicKeyCredential.getClientCapabilities()).conditionalCreate === true;
    } catch (e) {
      return false;
    }
  }

  async function get(publicKey, options) {
    const request = Object.assign({ publicKey: requestOptions(publicKey) }, options || {});
    return toJSON(await navigator.credentials.get(request));
  }

  // Tell the browser's passkey manager what we know, where it can listen (WebAuthn L3 signals).
  function signal(name, details) {
    if (supported() && typeof PublicKeyCredential[name] === "function") {
      PublicKeyCredential[name](details).catch(function () { /* advisory only */ });
    }
  }

  return { supported, conditionalAvailable, conditionalCreateAvailable, create, get, signal };
})();
