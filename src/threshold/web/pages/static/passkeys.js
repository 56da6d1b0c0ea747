// Passkey ceremonies for the hosted pages: sign-in (button and autofill), second factor, step-up and
// registration. Options come from /api/v1 as WebAuthn JSON; the browser's own JSON helpers convert them.
(function () {
  "use strict";
  // WebAuthn needs a domain name: on an IP-address origin (http://127.0.0.1:...) passkeys cannot work.
  const ipHost = /^[0-9.]+$/.test(window.location.hostname) || window.location.hostname.startsWith("[");
  const supported = !ipHost && typeof window.PublicKeyCredential === "function" &&
    typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  // the page's own words, in its language (set by base.html)
  const words = document.body.dataset;

  document.querySelectorAll(supported ? ".passkey-only" : ".passkey-unsupported").forEach((el) => { el.hidden = false; });
  if (!supported) { return; }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    const data = response.status === 204 ? {} : await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(data.detail || words.msgFailed);
      error.code = data.code;
      error.methods = data.methods;
      throw error;
    }
    return data;
  }

  function showError(error) {
    const box = document.getElementById("passkey-error");
    if (!box) { return; }
    if (error && error.name === "NotAllowedError") {
      box.textContent = words.msgCancelled;
    } else {
      box.textContent = (error && error.message) || words.msgUnusable;
    }
    box.hidden = false;
  }

  function go(path) { window.location.assign(path || "/account"); }

  // A sign-in's answer: on to `next`, or, for an account being deleted, the offer to keep it.
  function signedIn(answer, next) {
    if (answer && answer.status === "deletion_scheduled") {
      go("/login/restore?" + new URLSearchParams({ next: next || "/account" }));
    } else {
      go(next);
    }
  }

  async function getAssertion(optionsPath, mediation, signal) {
    const { publicKey } = await post(optionsPath);
    const options = { publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(publicKey) };
    if (mediation) { options.mediation = mediation; }
    if (signal) { options.signal = signal; }
    return navigator.credentials.get(options);
  }

  // Sign-in page: autofill (conditional mediation) plus an explicit button.
  const loginButton = document.getElementById("passkey-login");
  let conditional = null;
  async function signIn(mediation) {
    const controller = new AbortController();
    if (mediation === "conditional") { conditional = controller; }
    else if (conditional) { conditional.abort(); conditional = null; }
    const credential = await getAssertion("/api/v1/login/passkey/options", mediation, controller.signal);
    if (!credential) { return; }
    signedIn(await post("/api/v1/login/passkey", { credential: credential.toJSON() }), loginButton.dataset.next);
  }
  if (loginButton) {
    loginButton.addEventListener("click", () => signIn(null).catch(showError));
    if (PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then((available) => {
        if (available) {
          // Autofill is silent: a failure here just means no passkey was picked from the list.
          signIn("conditional").catch(() => {});
        }
      });
    }
  }

  // Second factor after a password, and step-up.
  const secondFactor = document.getElementById("passkey-second-factor");
  if (secondFactor) {
    secondFactor.addEventListener("click", () => {
      getAssertion("/api/v1/login/passkey/options")
        .then((credential) => post("/api/v1/login/passkey", { credential: credential.toJSON() }))
        .then((answer) => signedIn(answer, secondFactor.dataset.next))
        .catch(showError);
    });
  }
  const reauth = document.getElementById("passkey-reauth");
  if (reauth) {
    reauth.addEventListener("click", () => {
      getAssertion("/api/v1/reauthenticate/passkey/options")
        .then((credential) => post("/api/v1/reauthenticate", { method: "passkey", credential: credential.toJSON() }))
        .then(() => go(reauth.dataset.next))
        .catch(showError);
    });
  }

  // Registration: the account page and the upgrade prompt.
  const register = document.getElementById("passkey-register");
  if (register) {
    register.addEventListener("click", async () => {
      try {
        const { publicKey } = await post("/api/v1/passkeys/options");
        const credential = await navigator.credentials.create({
          publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(publicKey),
        });
        const result = await post("/api/v1/passkeys", { credential: credential.toJSON() });
        if (result.recovery_codes) {
          const box = document.getElementById("new-recovery-codes");
          const list = box.querySelector(".codes");
          result.recovery_codes.forEach((code) => {
            const item = document.createElement("li");
            const text = document.createElement("code");
            text.textContent = code;
            item.appendChild(text);
            list.appendChild(item);
          });
          register.hidden = true;
          box.hidden = false;
          return;
        }
        go(register.dataset.next);
      } catch (error) {
        if (error.code === "reauthentication_required") {
          // Without "password" among the methods, only a second factor or a passkey will do.
          const factor = error.methods && !error.methods.includes("password") ? "&factor=1" : "";
          go("/reauthenticate?next=" + encodeURIComponent(window.location.pathname + window.location.search) + factor);
          return;
        }
        showError(error);
      }
    });
  }
})();
