// A single-page app behind threshold-bff: it holds no token, only calls its own origin with X-CSRF: 1.
const call = (path, options = {}) =>
  fetch(path, { ...options, headers: { "X-CSRF": "1", ...(options.headers || {}) } });

async function show() {
  const answer = await call("/bff/user");
  const signedIn = answer.ok;
  document.getElementById("status").textContent = signedIn
    ? `Signed in as ${(await answer.json()).email}`
    : "Not signed in.";
  document.getElementById("signin").hidden = signedIn;
  document.getElementById("load").hidden = !signedIn;
  document.getElementById("signout").hidden = !signedIn;
}

document.getElementById("load").addEventListener("click", async () => {
  const answer = await call("/api/orders");
  const body = answer.ok ? await answer.json() : null;
  document.getElementById("orders").textContent = body
    ? `orders of ${body.sub} (token ${body.jti})`
    : `refused: ${answer.status}`;
  if (answer.status === 401) await show();
});

document.getElementById("signout").addEventListener("click", async () => {
  const answer = await call("/bff/logout", { method: "POST" });
  window.location.assign((await answer.json()).logout_url);
});

show();
