// ozkernels' page: the Sync button (a POST carrying the XSRF token) and the refreshed table.
"use strict";

(() => {
  const button = document.getElementById("ozk-sync");
  const result = document.getElementById("ozk-result");
  const verbs = { add: "added", update: "updated", remove: "removed" };

  // Jupyter Server checks the _xsrf cookie against this header on cookie-authenticated POSTs.
  function xsrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
    if (match) {
      return decodeURIComponent(match[1]);
    }
    const meta = document.querySelector('meta[name="ozk-xsrf"]');
    return meta ? meta.content : "";
  }

  function show(summary, items, failed) {
    result.replaceChildren();
    const head = document.createElement("div");
    head.textContent = summary;
    result.append(head);
    if (items.length) {
      const list = document.createElement("ul");
      for (const text of items) {
        const item = document.createElement("li");
        item.textContent = text;
        list.append(item);
      }
      result.append(list);
    }
    result.classList.toggle("ozk-result-error", failed);
    result.hidden = false;
  }

  function describe(data) {
    const actions = data.actions || [];
    const notes = data.notes || [];
    if (!actions.length) {
      return [`Sync done: nothing to change, ${data.unchanged} kernel(s) up to date.`, notes];
    }
    const counts = Object.keys(verbs).map(
      (op) => `${actions.filter((a) => a.action === op).length} ${verbs[op]}`
    );
    const items = actions.map(
      (a) => `${verbs[a.action] || a.action} ${a.kernel}: ${a.reason} (${a.prefix})`
    );
    return [`Sync done: ${counts.join(", ")}, ${data.unchanged} unchanged.`, [...items, ...notes]];
  }

  async function refresh(changed) {
    const response = await fetch(window.location.href, { credentials: "same-origin" });
    if (!response.ok) {
      return;
    }
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById("ozk-content");
    if (fresh) {
      document.getElementById("ozk-content").replaceWith(fresh);
    }
    for (const name of changed) {
      const row = document.querySelector(`tr[data-kernel="${CSS.escape(name)}"]`);
      if (row) {
        row.classList.add("ozk-changed");
      }
    }
  }

  async function sync() {
    button.disabled = true;
    show("Syncing…", [], false);
    try {
      const response = await fetch(button.dataset.url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-XSRFToken": xsrfToken() },
      });
      let data = {};
      try {
        data = await response.json();
      } catch {
        data = {};
      }
      if (!response.ok) {
        throw new Error(data.message || `${response.status} ${response.statusText}`);
      }
      const [summary, items] = describe(data);
      await refresh(data.actions.filter((a) => a.action !== "remove").map((a) => a.kernel));
      show(summary, items, false);
    } catch (error) {
      show(`Sync failed: ${error.message}`, [], true);
    } finally {
      button.disabled = false;
    }
  }

  button.addEventListener("click", sync);
})();
