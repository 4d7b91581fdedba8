// What assisto's widgets (the client file, the live-chat desk, the tools) share: the Matrix
// widget API with Element (postMessage: answering its questions, asking for an OpenID
// token), the calls to this service with that token, tabs and downloads. Served at
// /_assisto/widget/widget-api.js.
"use strict";
window.AssistoWidget = (() => {
  // Speaks the widget API with the page that embeds the widget (Element). `capabilities`:
  // what the widget asks for; `onToken(accessToken)` runs whenever Element hands out an
  // OpenID token, `onBlocked()` when the counsellor refused it.
  function connect({ widgetId, capabilities = [], onToken, onBlocked }) {
    const pending = new Map();
    let approved = [];
    function toParent(action, data) {
      const requestId = "assisto-" + Math.random().toString(36).slice(2);
      window.parent.postMessage({ api: "fromWidget", widgetId, requestId, action, data }, "*");
      return new Promise((resolve) => pending.set(requestId, resolve));
    }
    function credentials(r) {
      if (r && r.state === "allowed" && r.access_token) onToken(r.access_token);
      else if (r && r.state === "blocked") onBlocked();
    }
    window.addEventListener("message", (ev) => {
      const m = ev.data;
      // Only the page that embeds the widget (Element) speaks the widget API with it.
      if (ev.source !== window.parent || !m || typeof m !== "object") return;
      if (m.api === "toWidget") {
        let response = {};
        if (m.action === "capabilities") response = { capabilities };
        if (m.action === "notify_capabilities") approved = (m.data || {}).approved || [];
        if (m.action === "openid_credentials") credentials(m.data);
        window.parent.postMessage({ ...m, response }, "*");
      } else if (m.api === "fromWidget" && pending.has(m.requestId)) {
        pending.get(m.requestId)(m.response || {});
        pending.delete(m.requestId);
      }
    });
    return {
      toParent,
      // Asks Element for a (new) OpenID token; the answer goes to onToken / onBlocked.
      requestToken: () => toParent("get_openid", {}).then(credentials),
      // Whether Element approved a capability.
      approved: (capability) => approved.includes(capability),
    };
  }

  // Calls this service's API under `base` with the current token (`token()`). A JSON body
  // is sent as JSON, FormData as it is. Refusals become an Error with the service's German
  // message and the HTTP status (`status`).
  function client(base, token) {
    async function send(method, path, body) {
      const headers = { "Authorization": "Bearer " + token() };
      if (body !== undefined && !(body instanceof FormData)) {
        headers["Content-Type"] = "application/json"; body = JSON.stringify(body);
      }
      const res = await fetch(base + path, { method, headers, body });
      if (!res.ok) {
        const json = await res.json().catch(() => ({}));
        const e = new Error(json.error || ("Fehler " + res.status));
        e.status = res.status;
        throw e;
      }
      return res;
    }
    return {
      send,
      call: async (method, path, body) => (await send(method, path, body)).json().catch(() => ({})),
    };
  }

  // Wraps an event handler: clears the error line, shows a refusal there (`fail`).
  const guard = (clearError, fail) => (f) => async (ev) => {
    if (ev) ev.preventDefault();
    clearError();
    try { await f(ev); } catch (e) { fail(e.message); }
  };

  // Tabs (WAI-ARIA tabs pattern): a click or the arrow keys select a tab and show its
  // panel (`aria-controls`).
  function tabs() {
    const all = [...document.querySelectorAll("[role=tab]")];
    function select(tab) {
      for (const t of all) {
        const on = t === tab;
        t.setAttribute("aria-selected", on); t.tabIndex = on ? 0 : -1;
        document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
      }
      tab.focus();
    }
    all.forEach((t, i) => {
      t.addEventListener("click", () => select(t));
      t.addEventListener("keydown", (e) => {
        if (e.key === "ArrowRight") select(all[(i + 1) % all.length]);
        if (e.key === "ArrowLeft") select(all[(i + all.length - 1) % all.length]);
      });
    });
  }

  // Hands a file to the browser as a download named `name`.
  function download(blob, name) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob); a.download = name; document.body.append(a); a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  // What every page has: `$` (an element by ID), `el` (a new element with properties and
  // children), the status line (`say`), the error line (`fail`), and `guarded` (a handler
  // that clears the error line and shows a refusal there).
  function page() {
    const $ = (id) => document.getElementById(id);
    const el = (tag, props, ...children) => {
      const e = document.createElement(tag);
      Object.assign(e, props || {});
      e.append(...children);
      return e;
    };
    const say = (t) => { $("status").textContent = t; };
    const fail = (t) => { $("error").textContent = t; };
    return { $, el, say, fail, guarded: guard(() => fail(""), fail) };
  }

  return { connect, client, guard, tabs, download, page };
})();
