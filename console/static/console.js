// sipwarden web console. No framework: the /v1 API of this origin, with
// the API key from sessionStorage. Every value from the server goes into
// the page through textContent, never as HTML.
"use strict";

(() => {
  const KEY = "sipwarden.apiKey";
  const REFRESH_MS = 2000;
  const views = ["overview", "connections", "credentials", "numbers", "registrations", "calls", "bans"];
  const $ = (id) => document.getElementById(id);
  let timer = null;
  let credCursor = "";
  let numCursor = "";
  // The connections and credentials seen last, by ID: numbers show their
  // owners by name, the edit form starts from a connection's values.
  let connByID = new Map();
  let credByID = new Map();

  // --- API ---------------------------------------------------------------

  class APIError extends Error {
    constructor(status, body) {
      const errs = (body && body.errors) || [];
      const msg = errs.map((e) => {
        const where = e.source && (e.source.pointer || e.source.parameter);
        return (where ? where.replace(/^\//, "") + ": " : "") + (e.detail || e.title);
      }).join("; ");
      super(msg || "HTTP " + status);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const key = sessionStorage.getItem(KEY);
    if (!key) {
      // Never "Bearer null": the server counts it as a failed key, and
      // enough of them block this address, the operator's own.
      signOut("Sign in first.");
      throw new APIError(401, null);
    }
    const headers = { Authorization: "Bearer " + key, Accept: "application/json" };
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    if (res.status === 204) return null;
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      if (res.status === 401 && path !== "/v1/connections?page[size]=1") signOut("The API key was refused: sign in again.");
      throw new APIError(res.status, data);
    }
    return data;
  }

  // --- status line -------------------------------------------------------

  function say(msg, isError) {
    const s = $("status");
    s.textContent = msg;
    s.className = isError ? "error" : "";
  }

  function fail(e) { say(e.message || String(e), true); }

  // --- DOM helpers -------------------------------------------------------

  function el(tag, text, attrs) {
    const n = document.createElement(tag);
    if (text !== undefined && text !== null) n.textContent = String(text);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
    return n;
  }

  function button(label, action, aria, cls) {
    const b = el("button", label, { type: "button", "data-action": action, "aria-label": aria });
    if (cls) b.className = cls;
    return b;
  }

  // fill puts rows (each with data-id) into the table's body, keeping the
  // rows and cells that did not change: a refresh every 2 s must not take
  // away the button under the pointer or the keyboard focus.
  function fill(table, rows, columns, emptyText) {
    const body = table.tBodies[0];
    if (rows.length === 0) {
      if (!body.querySelector("td.empty") || body.rows.length !== 1) {
        const tr = el("tr");
        tr.append(el("td", emptyText, { colspan: String(columns), class: "empty" }));
        body.replaceChildren(tr);
      }
      return;
    }
    const old = new Map();
    for (const r of body.rows) if (r.dataset.id !== undefined) old.set(r.dataset.id, r);
    const out = rows.map((r) => {
      const o = old.get(r.dataset.id);
      if (!o || o.cells.length !== r.cells.length) return r;
      for (let i = 0; i < r.cells.length; i++) {
        if (!o.cells[i].isEqualNode(r.cells[i])) o.replaceChild(r.cells[i].cloneNode(true), o.cells[i]);
      }
      Object.assign(o.dataset, r.dataset);
      return o;
    });
    const keep = new Set(out);
    for (const r of [...body.rows]) if (!keep.has(r)) r.remove();
    out.forEach((r, i) => { if (body.rows[i] !== r) body.insertBefore(r, body.rows[i] || null); });
  }

  function row(id, cells, actions) {
    const tr = el("tr", null, { "data-id": id });
    for (const c of cells) tr.append(c instanceof Node ? c : el("td", c === "" ? "–" : c));
    const td = el("td", null, { class: "actions" });
    for (const a of actions) td.append(a);
    tr.append(td);
    return tr;
  }

  const when = (t) => (t ? new Date(t).toLocaleString() : "");

  // --- views -------------------------------------------------------------

  function show(view) {
    document.body.dataset.view = view;
    for (const v of ["login", ...views]) $("view-" + v).hidden = v !== view;
    for (const v of views) {
      const b = $("nav-" + v);
      if (v === view) b.setAttribute("aria-current", "page"); else b.removeAttribute("aria-current");
    }
    $("nav").hidden = view === "login";
    clearInterval(timer);
    timer = null;
    const heading = $("view-" + view).querySelector("h2");
    if (heading) heading.focus();
    if (view === "login") return;
    if (location.hash !== "#" + view) history.replaceState(null, "", "#" + view);
    const load = loaders[view];
    load().catch(fail);
    if (["overview", "registrations", "calls", "bans"].includes(view)) {
      timer = setInterval(() => load().catch(fail), REFRESH_MS);
    }
  }

  const loaders = {
    overview: loadOverview,
    connections: loadConnections,
    // The connections first: the credentials table names them (connLabel).
    credentials: async () => {
      await loadConnections();
      return loadCredentials(false);
    },
    numbers: async () => {
      await Promise.all([loadConnections(), loadCredentialNames()]);
      return loadNumbers(false);
    },
    registrations: loadRegistrations,
    calls: loadCalls,
    bans: loadBans,
  };

  // Overview: live figures from the API, and counters from /metrics when
  // this listener serves it.
  async function loadOverview() {
    const [regs, calls, bans] = await Promise.all([
      api("GET", "/v1/registrations?page[size]=1000"),
      api("GET", "/v1/calls?page[size]=1000"),
      api("GET", "/v1/bans?page[size]=1000"),
    ]);
    const more = (l) => (l.meta && l.meta.next_cursor ? "+" : "");
    const figures = [
      ["Registered devices", regs.data.length + more(regs)],
      ["Live calls", calls.data.length + more(calls)],
      ["Banned sources", bans.data.length + more(bans)],
    ];
    const m = await metrics();
    if (m) {
      const add = (label, name) => { if (name in m) figures.push([label, Math.round(m[name])]); };
      add("Open SIP connections", "sipwarden_sip_connections_open");
      add("Registrations (total)", "sipwarden_registrar_registrations_total");
      add("Calls attempted (total)", "sipwarden_proxy_calls_attempted_total");
      add("Calls answered (total)", "sipwarden_proxy_calls_answered_total");
      add("Bans issued (total)", "sipwarden_guard_bans_issued_total");
      add("SIP requests (total)", "sipwarden_sip_requests_total");
    }
    const dl = $("figures");
    dl.replaceChildren();
    for (const [label, value] of figures) {
      const d = el("div", null, { "data-figure": label });
      d.append(el("dt", label), el("dd", value));
      dl.append(d);
    }
  }

  // metrics sums each metric of /metrics over its labels; null when the
  // listener does not serve it.
  async function metrics() {
    try {
      const res = await fetch("/metrics", { headers: { Accept: "text/plain" } });
      if (!res.ok) return null;
      const out = {};
      for (const line of (await res.text()).split("\n")) {
        if (!line.startsWith("sipwarden_")) continue;
        const m = line.match(/^([a-z_]+)(?:\{[^}]*\})?\s+(\S+)/);
        if (m) out[m[1]] = (out[m[1]] || 0) + Number(m[2]);
      }
      return out;
    } catch (e) {
      return null;
    }
  }

  const limits = (c) => [c.max_calls ? c.max_calls + " calls" : "", c.max_registrations ? c.max_registrations + " registrations" : ""]
    .filter(Boolean).join(", ") || "none";

  async function loadConnections() {
    const res = await api("GET", "/v1/connections?page[size]=1000");
    connByID = new Map(res.data.map((c) => [c.id, c]));
    const rows = res.data.map((c) => {
      const tr = row(c.id, [c.name, c.id, c.kind, c.active ? "yes" : "no", (c.allowed_cidrs || []).join(", ") || "any",
        c.caller_id_policy, c.sip_uri_calling_preference, limits(c)], [
        button("Edit", "edit", "Edit the policies of connection " + c.name),
        c.active ? button("Deactivate", "deactivate", "Deactivate connection " + c.name)
          : button("Activate", "activate", "Activate connection " + c.name),
        ...(c.id === "default" ? [] : [button("Delete", "delete", "Delete connection " + c.name, "danger")]),
      ]);
      tr.dataset.name = c.name;
      return tr;
    });
    fill($("conn-table"), rows, 9, "No connections.");
    const sel = $("cred-connection");
    const current = sel.value;
    sel.replaceChildren(...res.data.map((c) => el("option", connLabel(c), { value: c.id })));
    if (current) sel.value = current;
    fillTargets();
  }

  // connLabel names a connection in a picker: names need not be unique,
  // so the end of its ID tells two of one name apart (the start of a
  // UUIDv7 is the time it was made: the same for a minute's connections).
  const connLabel = (c) => c.name + (c.id === "default" ? "" : " (…" + c.id.slice(-8) + ")");

  // fillTargets fills the number form's select: the connections, then the
  // credentials, keeping the choice.
  function fillTargets() {
    const sel = $("num-target");
    const current = sel.value;
    const conns = el("optgroup", null, { label: "Connection (calls go to its PBX)" });
    for (const c of connByID.values()) conns.append(el("option", connLabel(c) + ", " + c.kind, { value: "connection:" + c.id }));
    const creds = el("optgroup", null, { label: "Credential (rings its devices)" });
    for (const c of credByID.values()) creds.append(el("option", c.username, { value: "credential:" + c.id }));
    sel.replaceChildren(el("option", "Choose…", { value: "" }), conns, creds);
    if (current) sel.value = current;
  }

  // loadCredentialNames reads the credentials (the first 1000) for the
  // number form and the names in the numbers table.
  async function loadCredentialNames() {
    const res = await api("GET", "/v1/credentials?page[size]=1000");
    credByID = new Map(res.data.map((c) => [c.id, c]));
    fillTargets();
  }

  async function loadNumbers(append) {
    const path = "/v1/numbers?page[size]=100" + (append && numCursor ? "&page[after]=" + encodeURIComponent(numCursor) : "");
    const res = await api("GET", path);
    numCursor = (res.meta && res.meta.next_cursor) || "";
    $("num-more").hidden = !numCursor;
    const rows = res.data.map(numberRow);
    if (append) {
      for (const r of rows) $("num-table").tBodies[0].append(r);
    } else {
      fill($("num-table"), rows, 4, "No numbers yet.");
    }
  }

  function numberRow(n) {
    const conn = connByID.get(n.connection_id);
    const cred = n.credential_id ? credByID.get(n.credential_id) : null;
    const credText = !n.credential_id ? "none: the connection's PBX" : cred ? cred.username : n.credential_id;
    const tr = row(n.number, [n.number, conn ? conn.name : n.connection_id, credText],
      [button("Delete", "delete", "Delete number " + n.number, "danger")]);
    tr.dataset.number = n.number;
    return tr;
  }

  async function loadCredentials(append) {
    const path = "/v1/credentials?page[size]=100" + (append && credCursor ? "&page[after]=" + encodeURIComponent(credCursor) : "");
    const res = await api("GET", path);
    credCursor = (res.meta && res.meta.next_cursor) || "";
    $("cred-more").hidden = !credCursor;
    const rows = res.data.map(credentialRow);
    if (append) {
      for (const r of rows) $("cred-table").tBodies[0].append(r);
    } else {
      fill($("cred-table"), rows, 6, "No credentials yet.");
    }
  }

  function credentialRow(c) {
    const state = el("td", c.state, { class: "state-" + c.state });
    const conn = connByID.get(c.connection_id);
    const tr = row(c.id, [c.username, state, conn ? connLabel(conn) : c.connection_id, c.name, c.tag], [
      c.enabled ? button("Disable", "disable", "Disable " + c.username)
        : button("Enable", "enable", "Enable " + c.username),
      button("Token", "token", "Mint a token for " + c.username),
      button("Revoke tokens", "revoke", "Revoke the tokens of " + c.username),
      button("Delete", "delete", "Delete " + c.username, "danger"),
    ]);
    tr.dataset.username = c.username;
    return tr;
  }

  async function loadRegistrations() {
    const res = await api("GET", "/v1/registrations?page[size]=1000");
    fill($("reg-table"), res.data.map((r) => {
      const tr = row(r.id, [r.username, r.contact, r.source, r.transport, r.user_agent, r.expires_in + " s"],
        [button("Remove", "remove", "Remove the registration of " + r.username + " from " + r.source)]);
      tr.dataset.username = r.username;
      return tr;
    }), 7, "No device is registered.");
  }

  async function loadCalls() {
    const res = await api("GET", "/v1/calls?page[size]=1000");
    fill($("call-table"), res.data.map((c) => row(c.id, [c.caller, c.callee, when(c.started_at)],
      [button("Hang up", "hangup", "Hang up the call from " + c.caller + " to " + c.callee, "danger")])),
    4, "No live calls.");
  }

  async function loadBans() {
    const res = await api("GET", "/v1/bans?page[size]=1000");
    fill($("ban-table"), res.data.map((b) => {
      const tr = row(b.ip, [b.ip, b.prefix, b.reason, b.failures, when(b.until)],
        [button("Unban", "unban", "Lift the ban of " + b.ip)]);
      tr.dataset.ip = b.ip;
      return tr;
    }), 6, "No source is banned.");
  }

  // --- secrets shown once ------------------------------------------------

  function showSecret(label, value) {
    $("secret-label").textContent = label;
    $("secret-value").textContent = value;
    $("secret").hidden = false;
    $("secret-dismiss").focus();
  }

  function hideSecret() {
    $("secret-value").textContent = "";
    $("secret").hidden = true;
  }

  // --- actions -----------------------------------------------------------

  // askConfirm turns a Delete button into its confirmation, in place, and
  // keeps the focus on it. onTable disables a button while its action
  // runs, and a disabled button cannot take the focus: enable it first.
  function askConfirm(btn, aria) {
    btn.textContent = "Confirm delete";
    btn.dataset.action = "confirm-delete";
    btn.className = "confirm";
    btn.setAttribute("aria-label", aria);
    btn.disabled = false;
    btn.focus();
  }

  async function credentialAction(action, tr, btn) {
    const id = tr.dataset.id;
    const user = tr.dataset.username;
    switch (action) {
      case "enable":
      case "disable":
        await api("PATCH", "/v1/credentials/" + encodeURIComponent(id), { enabled: action === "enable" });
        say(user + (action === "enable" ? " enabled" : " disabled; its registrations and calls were ended"));
        return loadCredentials(false);
      case "token": {
        const res = await api("POST", "/v1/credentials/" + encodeURIComponent(id) + "/token");
        say("token minted for " + user);
        showSecret("Token for " + user + ", valid until " + when(res.data.expires_at) + ":", res.data.token);
        return null;
      }
      case "revoke":
        await api("POST", "/v1/credentials/" + encodeURIComponent(id) + "/actions/revoke_tokens");
        say("tokens of " + user + " revoked");
        return null;
      case "delete":
        askConfirm(btn, "Confirm: delete " + user);
        return null;
      case "confirm-delete":
        await api("DELETE", "/v1/credentials/" + encodeURIComponent(id));
        say(user + " deleted; its registrations and calls were ended");
        return loadCredentials(false);
    }
    return null;
  }

  async function numberAction(action, tr, btn) {
    const num = tr.dataset.number;
    switch (action) {
      case "delete":
        askConfirm(btn, "Confirm: delete number " + num);
        return null;
      case "confirm-delete":
        await api("DELETE", "/v1/numbers/" + encodeURIComponent(num));
        say("number " + num + " deleted");
        return loadNumbers(false);
    }
    return null;
  }

  // The edit form of a connection's policies, below the table.
  let editing = "";

  function openEdit(id) {
    const c = connByID.get(id);
    if (!c) return;
    editing = id;
    $("conn-edit-legend").textContent = "Edit connection " + c.name;
    $("conn-edit-caller-id").value = c.caller_id_policy;
    $("conn-edit-sip-uri").value = c.sip_uri_calling_preference;
    $("conn-edit-max-calls").value = c.max_calls ? String(c.max_calls) : "";
    $("conn-edit-max-regs").value = c.max_registrations ? String(c.max_registrations) : "";
    $("conn-edit-pbx-uri").value = c.pbx_uri || "";
    $("conn-edit-webhook-url").value = c.webhook_event_url || "";
    $("conn-edit").hidden = false;
    $("conn-edit-caller-id").focus();
  }

  function closeEdit() {
    const id = editing;
    editing = "";
    $("conn-edit").hidden = true;
    const back = id && $("conn-table").querySelector('tr[data-id="' + CSS.escape(id) + '"] button[data-action="edit"]');
    if (back) back.focus();
  }

  // A number input: empty is 0 (no limit); anything else goes to the API
  // as typed when it is not a whole number, for the API to name.
  function limit(input) {
    const v = input.value.trim();
    if (v === "") return 0;
    const n = Number(v);
    return Number.isInteger(n) ? n : v;
  }

  // A connection's webhook secret, in the answer that gave it its first
  // URL only.
  function webhookSecret(c) {
    if (c && c.webhook_secret) showSecret("Webhook signing secret of connection " + c.name + ":", c.webhook_secret);
  }

  async function connectionAction(action, tr, btn) {
    const id = tr.dataset.id;
    switch (action) {
      case "edit":
        openEdit(id);
        return null;
      case "activate":
      case "deactivate":
        await api("PATCH", "/v1/connections/" + encodeURIComponent(id), { active: action === "activate" });
        say("connection " + (action === "activate" ? "activated" : "deactivated"));
        return loadConnections();
      case "delete":
        askConfirm(btn, "Confirm: delete connection " + tr.dataset.name);
        return null;
      case "confirm-delete":
        await api("DELETE", "/v1/connections/" + encodeURIComponent(id));
        if (editing === id) closeEdit();
        say("connection deleted");
        return loadConnections();
    }
    return null;
  }

  function onTable(tableId, handler) {
    $(tableId).addEventListener("click", (ev) => {
      const btn = ev.target.closest("button[data-action]");
      if (!btn) return;
      const tr = btn.closest("tr");
      btn.disabled = true;
      // An earlier error must not stay up as if it were this action's:
      // the action says its own outcome, or fail does.
      say("");
      Promise.resolve(handler(btn.dataset.action, tr, btn)).catch(fail).finally(() => { btn.disabled = false; });
    });
  }

  // --- sign in and out ---------------------------------------------------

  function signOut(msg) {
    sessionStorage.removeItem(KEY);
    hideSecret();
    show("login");
    say(msg || "signed out");
  }

  async function signIn(key) {
    sessionStorage.setItem(KEY, key);
    try {
      await api("GET", "/v1/connections?page[size]=1");
    } catch (e) {
      sessionStorage.removeItem(KEY);
      throw e;
    }
    $("login-key").value = "";
    say("signed in");
    const want = location.hash.slice(1);
    show(views.includes(want) ? want : "overview");
  }

  function init() {
    for (const v of views) $("nav-" + v).addEventListener("click", () => { say(""); show(v); });
    $("logout").addEventListener("click", () => signOut());
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      signIn($("login-key").value.trim()).catch(fail);
    });
    $("cred-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      // The server generates the password (and the username, when the
      // field is left empty) and answers it once, in the 201.
      const body = { connection_id: $("cred-connection").value || "default" };
      if ($("cred-username").value.trim()) body.username = $("cred-username").value.trim();
      if ($("cred-name").value) body.name = $("cred-name").value;
      if ($("cred-tag").value) body.tag = $("cred-tag").value;
      api("POST", "/v1/credentials", body).then((res) => {
        $("cred-form").reset();
        say("credential " + res.data.username + " created");
        showSecret("Password of " + res.data.username + ":", res.data.password);
        return loadCredentials(false);
      }).catch(fail);
    });
    $("conn-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const cidrs = $("conn-cidrs").value.split(",").map((s) => s.trim()).filter(Boolean);
      const body = { name: $("conn-name").value.trim(), kind: $("conn-kind").value, allowed_cidrs: cidrs };
      if ($("conn-caller-id").value) body.caller_id_policy = $("conn-caller-id").value;
      if ($("conn-sip-uri").value) body.sip_uri_calling_preference = $("conn-sip-uri").value;
      if ($("conn-max-calls").value.trim()) body.max_calls = limit($("conn-max-calls"));
      if ($("conn-max-regs").value.trim()) body.max_registrations = limit($("conn-max-regs"));
      if ($("conn-pbx-uri").value.trim()) body.pbx_uri = $("conn-pbx-uri").value.trim();
      if ($("conn-webhook-url").value.trim()) body.webhook_event_url = $("conn-webhook-url").value.trim();
      api("POST", "/v1/connections", body).then((res) => {
        $("conn-form").reset();
        $("conn-policies").open = false;
        say("connection " + res.data.name + " created");
        webhookSecret(res.data);
        return loadConnections();
      }).catch(fail);
    });
    $("conn-edit").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const id = editing;
      const c = connByID.get(id);
      if (!c) return;
      // Only what changed: a change made elsewhere meanwhile stays, and an
      // unchanged webhook URL is not checked (resolved) again.
      const form = {
        caller_id_policy: $("conn-edit-caller-id").value,
        sip_uri_calling_preference: $("conn-edit-sip-uri").value,
        max_calls: limit($("conn-edit-max-calls")),
        max_registrations: limit($("conn-edit-max-regs")),
        pbx_uri: $("conn-edit-pbx-uri").value.trim(),
        webhook_event_url: $("conn-edit-webhook-url").value.trim(),
      };
      const body = {};
      for (const [k, v] of Object.entries(form)) if (v !== (c[k] ?? "")) body[k] = v;
      if (Object.keys(body).length === 0) {
        say("nothing changed in connection " + c.name);
        closeEdit();
        return;
      }
      const save = $("conn-edit-save");
      save.disabled = true;
      api("PATCH", "/v1/connections/" + encodeURIComponent(id), body).then((res) => {
        say("connection " + res.data.name + " saved");
        closeEdit();
        webhookSecret(res.data);
        return loadConnections();
      }).catch(fail).finally(() => { save.disabled = false; });
    });
    $("conn-edit-cancel").addEventListener("click", closeEdit);
    $("conn-edit").addEventListener("keydown", (ev) => { if (ev.key === "Escape") closeEdit(); });
    $("num-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const [kind, id] = $("num-target").value.split(/:(.*)/s);
      const body = { number: $("num-number").value.trim() };
      if (kind === "credential") body.credential_id = id;
      else if (kind === "connection") body.connection_id = id;
      api("POST", "/v1/numbers", body).then((res) => {
        $("num-number").value = "";
        const n = res.data;
        const cred = n.credential_id && credByID.get(n.credential_id);
        const conn = connByID.get(n.connection_id);
        say("number " + n.number + " assigned to " + (cred ? cred.username : conn ? "connection " + conn.name : n.connection_id));
        return loadNumbers(false);
      }).catch(fail);
    });
    $("num-more").addEventListener("click", () => loadNumbers(true).catch(fail));
    $("secret-dismiss").addEventListener("click", hideSecret);
    $("cred-more").addEventListener("click", () => loadCredentials(true).catch(fail));
    onTable("cred-table", credentialAction);
    onTable("conn-table", connectionAction);
    onTable("num-table", numberAction);
    onTable("reg-table", async (action, tr) => {
      await api("DELETE", "/v1/registrations/" + encodeURIComponent(tr.dataset.id));
      say("registration of " + tr.dataset.username + " removed");
      return loadRegistrations();
    });
    onTable("call-table", async (action, tr) => {
      await api("DELETE", "/v1/calls/" + encodeURIComponent(tr.dataset.id));
      say("call ended");
      return loadCalls();
    });
    onTable("ban-table", async (action, tr) => {
      await api("DELETE", "/v1/bans/" + encodeURIComponent(tr.dataset.ip));
      say("ban of " + tr.dataset.ip + " lifted");
      return loadBans();
    });
    window.addEventListener("hashchange", () => {
      const want = location.hash.slice(1);
      if (sessionStorage.getItem(KEY) && views.includes(want) && document.body.dataset.view !== want) show(want);
    });
    if (sessionStorage.getItem(KEY)) {
      // Back in the same tab: load the connections for the credential form too.
      const want = location.hash.slice(1);
      show(views.includes(want) ? want : "overview");
      loadConnections().catch(() => {});
    } else {
      show("login");
    }
  }

  init();
})();
