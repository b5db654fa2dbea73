// The task console: a person's view of this API, in the browser. It calls the same routes as
// any client, with the bearer token the person pasted (kept in sessionStorage, so it dies with
// the tab). Everything shown is built with DOM calls and textContent: nothing the API returns
// is ever parsed as HTML. The page's Content-Security-Policy forbids inline script.

const TASK_TYPES = ["beneficiaries-import", "beneficiaries-validation"];
const STATUSES = [
  "awaiting_upload", "validating", "queued", "running", "completed",
  "completed_with_errors", "failed", "cancelled", "rejected",
];
const FINAL = new Set(["completed", "completed_with_errors", "failed", "cancelled", "rejected"]);
const EVENT_TYPES = [
  "task.completed", "task.completed_with_errors", "task.failed", "task.cancelled", "task.rejected",
];
const POLL_MS = 2000;
const PAGE = 20;
// A CSV download follows the API's pages up to this many items; past it, the task's file link.
const DOWNLOAD_PAGES = 100;
const DOWNLOAD_PAGE_ITEMS = 1000;

let config = { live_url: null, uploads_origin: null, dev_tokens: [], max_body_bytes: 3000000 };
let stopView = () => {};
// The sign-in section, kept while other views replace it in the page.
const signInSection = document.getElementById("sign-in");

// ---------- small helpers ----------

/** An element with attributes, listeners (`on: {click: fn}`) and children (nodes or text). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "on") {
      for (const [event, fn] of Object.entries(value)) node.addEventListener(event, fn);
    } else if (name === "text") {
      node.textContent = value;
    } else if (name === "class") {
      node.className = value;
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const $ = (id) => document.getElementById(id);

function when(value) {
  if (!value) return "—";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toLocaleString();
}

function statusBadge(status) {
  return el("span", { class: `status ${status}`, text: status.replaceAll("_", " ") });
}

function progressBar(task, live = false) {
  const p = task.progress;
  const label = p.total
    ? `${p.processed.toLocaleString()} of ${p.total.toLocaleString()} items (${p.percent}%)`
    : task.file ? `${(task.file.rows_read ?? 0).toLocaleString()} rows read` : "no items yet";
  return el("div", { class: "progress" },
    el("progress", { max: 100, value: p.percent, "aria-label": `Progress of task ${task.task_id}` }),
    el("span", { class: "progress-text", "aria-live": live ? "polite" : null, text: label }));
}

function randomKey() {
  return crypto.randomUUID();
}

// ---------- messages ----------

function notice(text) {
  $("notice").textContent = text;
}

function clearAlert() {
  $("alert").hidden = true;
  $("alert").textContent = "";
}

/** Shows what went wrong, in the API's own words. */
function showError(error) {
  const alert = $("alert");
  alert.replaceChildren();
  if (error instanceof ApiProblem) {
    alert.append(el("strong", { text: error.message }), " ");
    alert.append(el("span", { class: "muted", text: `(${error.code}, HTTP ${error.status})` }));
    if (error.details?.length) {
      const list = el("ul");
      for (const d of error.details.slice(0, 10)) {
        const where = [d.line ? `line ${d.line}` : d.index !== undefined ? `item ${d.index}` : null, d.field]
          .filter(Boolean).join(", ");
        list.append(el("li", { text: where ? `${where}: ${d.message}` : d.message }));
      }
      if (error.details.length > 10) list.append(el("li", { text: `and ${error.details.length - 10} more` }));
      alert.append(list);
    }
  } else {
    alert.append(el("strong", { text: "Something went wrong in this page." }), " ", String(error?.message ?? error));
  }
  alert.hidden = false;
}

// ---------- the API ----------

class ApiProblem extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

const STATUS_WORDS = {
  401: "Your token was refused. Sign in again.",
  403: "This token may not do that.",
  404: "Not found.",
  413: "That is too large for this API.",
  429: "Too many requests. Wait a moment and try again.",
  502: "The back office answered badly. Try again later.",
  503: "The service is unavailable for a moment. Try again shortly.",
  504: "The back office did not answer in time. Try again later.",
};

function token() {
  return sessionStorage.getItem("token");
}

/** Calls the API; answers the parsed body (or the response for `raw`), throws an ApiProblem. */
async function api(method, path, { body, contentType, headers = {}, raw = false } = {}) {
  const sent = { Authorization: `Bearer ${token()}`, ...headers };
  let payload;
  if (body !== undefined) {
    sent["Content-Type"] = contentType ?? "application/json";
    payload = body instanceof Blob || typeof body === "string" ? body : JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers: sent, body: payload, cache: "no-store" });
  } catch {
    throw new ApiProblem(0, "network_error", "The API could not be reached. Check the connection and try again.");
  }
  if (!response.ok) {
    let problem = null;
    try {
      problem = (await response.json()).error;
    } catch {
      // A gateway's plain-text refusal: described by its status below.
    }
    if (response.status === 401) signOut();
    throw new ApiProblem(response.status, problem?.code ?? `http_${response.status}`,
      problem?.message ?? STATUS_WORDS[response.status] ?? `The API answered ${response.status}.`,
      problem?.details);
  }
  if (raw) return response;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

// ---------- sign-in ----------

/** Shows `hash`: by changing it (the hashchange listener routes), or again if it is current. */
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function signIn(value) {
  sessionStorage.setItem("token", value.trim());
  go("#/tasks");
}

function signOut() {
  sessionStorage.removeItem("token");
  go("#/sign-in");
}

function showSignIn() {
  const section = signInSection;
  section.hidden = false;
  $("nav").hidden = true;
  $("who").hidden = true;
  const list = section.querySelector("#dev-token-list");
  list.replaceChildren(...config.dev_tokens.map((d) =>
    el("li", {}, el("button", { type: "button", class: "secondary", on: { click: () => signIn(d.token) } },
      `Sign in as ${d.subject}`))));
  section.querySelector("#dev-tokens").hidden = config.dev_tokens.length === 0;
  $("view").replaceChildren(section);
  section.querySelector("#token").focus();
}

// ---------- routing ----------

function route() {
  stopView();
  stopView = () => {};
  clearAlert();
  notice("");
  if (!token()) {
    showSignIn();
    return;
  }
  signInSection.hidden = true;
  $("nav").hidden = false;
  $("who").hidden = false;
  const known = config.dev_tokens.find((d) => d.token === token());
  $("who-name").textContent = known ? `Signed in as ${known.subject}` : "Signed in";
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const section = parts[0] || "tasks";
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const view = $("view");
  if (section === "tasks" && parts.length === 3) taskView(view, parts[1], parts[2]);
  else if (section === "new") newTaskView(view);
  else if (section === "webhooks" && parts.length === 2) deliveriesView(view, parts[1]);
  else if (section === "webhooks") webhooksView(view);
  else tasksView(view);
  view.focus();
}

// ---------- tasks ----------

function tasksView(view) {
  const params = new URLSearchParams(sessionStorage.getItem("task-filter") ?? "");
  const type = el("select", { id: "filter-type" },
    TASK_TYPES.map((t) => el("option", { value: t, selected: params.get("type") === t }, t)));
  const status = el("select", { id: "filter-status" },
    el("option", { value: "" }, "any status"),
    STATUSES.map((s) => el("option", { value: s, selected: params.get("status") === s }, s.replaceAll("_", " "))));
  const body = el("tbody");
  const more = el("button", { type: "button", class: "secondary", hidden: true }, "Show more");
  const table = el("table", {},
    el("caption", { class: "muted", text: "Newest first" }),
    el("thead", {}, el("tr", {}, ["Task", "Status", "Progress", "Created", "Finished"].map((h) => el("th", { scope: "col", text: h })))),
    body);
  let next = null;

  async function load(reset) {
    if (reset) {
      body.replaceChildren();
      next = null;
    }
    sessionStorage.setItem("task-filter", new URLSearchParams({ type: type.value, status: status.value }).toString());
    const query = new URLSearchParams({ limit: PAGE });
    if (status.value) query.set("status", status.value);
    if (next) query.set("page_token", next);
    try {
      const page = await api("GET", `/tasks/${type.value}?${query}`);
      for (const task of page.tasks) {
        const link = el("a", { href: `#/tasks/${task.task_type}/${task.task_id}`, class: "id" }, task.task_id);
        body.append(el("tr", {},
          el("td", {}, link),
          el("td", {}, statusBadge(task.status)),
          el("td", {}, progressBar(task)),
          el("td", { text: when(task.created_at) }),
          el("td", { text: when(task.finished_at) })));
      }
      if (!body.children.length) body.append(el("tr", {}, el("td", { colspan: 5, class: "muted", text: "No tasks yet." })));
      next = page.next_page_token;
      more.hidden = !next;
      notice(`${body.querySelectorAll("a").length} tasks shown.`);
    } catch (e) {
      showError(e);
    }
  }

  type.addEventListener("change", () => load(true));
  status.addEventListener("change", () => load(true));
  more.addEventListener("click", () => load(false));
  view.replaceChildren(el("section", { "aria-labelledby": "tasks-title" },
    el("h2", { id: "tasks-title", text: "Tasks" }),
    el("div", { class: "filters" },
      el("div", {}, el("label", { for: "filter-type", text: "Type" }), type),
      el("div", {}, el("label", { for: "filter-status", text: "Status" }), status),
      el("button", { type: "button", class: "secondary", on: { click: () => load(true) } }, "Refresh")),
    table, more));
  load(true);
}

function taskView(view, type, id) {
  const title = el("h2", { id: "task-title" }, "Task ", el("span", { class: "id", text: id }));
  const summary = el("div", { id: "task-summary" });
  const mode = el("p", { class: "muted", id: "live-mode" });
  const actions = el("div", { class: "actions" });
  const errors = el("section", { "aria-labelledby": "errors-title" });
  view.replaceChildren(el("section", { "aria-labelledby": "task-title" }, title, summary, mode, actions), errors);
  let current = null;

  function render(task) {
    current = task;
    const p = task.progress;
    const counters = [["Total", p.total], ["Processed", p.processed], ["Succeeded", p.succeeded],
      ["Failed", p.failed], ["Cancelled", p.cancelled], ["Not attempted", p.not_attempted]];
    const parts = [
      el("p", {}, "Status: ", statusBadge(task.status),
        p.waiting_for_upstream ? el("span", { class: "muted", text: " — waiting for the back office to recover; nothing fails meanwhile" }) : null),
      progressBar(task, true),
      el("dl", { class: "counters" }, counters.map(([k, v]) => el("div", {}, el("dt", { text: k }), el("dd", { text: (v ?? 0).toLocaleString() })))),
      el("p", { class: "muted" }, `Type ${task.task_type}. Created ${when(task.created_at)}. `,
        `Started ${when(task.started_at)}. Finished ${when(task.finished_at)}.`),
      task.rejection ? el("p", {}, "Rejected: ", task.rejection.message) : null,
      task.retry_of ? el("p", {}, "Retries ", el("a", { href: `#/tasks/${type}/${task.retry_of}`, text: task.retry_of })) : null,
      task.retried_by ? el("p", {}, "Retried by ", el("a", { href: `#/tasks/${type}/${task.retried_by}`, text: task.retried_by })) : null,
    ];
    summary.replaceChildren(...parts.filter(Boolean));
    renderActions(task);
    if (FINAL.has(task.status) && !errors.dataset.loaded) {
      errors.dataset.loaded = "yes";
      errorsTable(errors, type, id);
    }
  }

  function renderActions(task) {
    const final = FINAL.has(task.status);
    const cancel = el("button", { type: "button", class: "danger", disabled: final, on: { click: cancelTask } }, "Cancel task");
    const retry = el("button", { type: "button", disabled: !final || !task.progress.failed || task.retried_by, on: { click: retryTask } }, "Retry failed items");
    const downloads = [
      el("button", { type: "button", class: "secondary", on: { click: () => download(task, "errors") } }, "Download errors (CSV)"),
      el("button", { type: "button", class: "secondary", on: { click: () => download(task, "result") } }, "Download results (CSV)"),
    ];
    actions.replaceChildren(cancel, retry, ...downloads);
  }

  async function cancelTask() {
    if (!confirm("Cancel this task? Items not yet started end as cancelled.")) return;
    try {
      render(await api("DELETE", `/tasks/${type}/${id}`));
      notice("Cancellation requested.");
    } catch (e) {
      showError(e);
    }
  }

  async function retryTask() {
    if (!confirm("Start a new task with the failed items that may succeed on a second try?")) return;
    try {
      const task = await api("POST", `/tasks/${type}/${id}/retry`, { headers: { "Idempotency-Key": randomKey() } });
      location.hash = `#/tasks/${task.task_type}/${task.task_id}`;
      notice("Retry started.");
    } catch (e) {
      showError(e);
    }
  }

  async function download(task, which) {
    const file = task.links?.[`${which}_file`];
    if (file) {
      // A file already written for the task: a short-lived link, opened as a download.
      el("a", { href: file, download: `${id}-${which}` }).click();
      return;
    }
    try {
      let path = `/tasks/${type}/${id}/${which}.csv?limit=${DOWNLOAD_PAGE_ITEMS}`;
      let csv = "";
      for (let page = 0; path && page < DOWNLOAD_PAGES; page++) {
        const response = await api("GET", path, { raw: true });
        const text = await response.text();
        // Every page repeats the header row: keep the first one only.
        csv += page === 0 ? text : text.slice(text.indexOf("\n") + 1);
        path = nextLink(response.headers.get("link"));
      }
      const url = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
      el("a", { href: url, download: `${id}-${which}.csv` }).click();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      notice(`Downloaded ${which} of task ${id}.`);
    } catch (e) {
      showError(e);
    }
  }

  const stop = watchTask(type, id, render, (text) => { mode.textContent = text; }, showError);
  stopView = stop;
}

function nextLink(header) {
  const match = header && /<([^>]+)>\s*;\s*rel="?next"?/.exec(header);
  if (!match) return null;
  const url = new URL(match[1], location.origin);
  return url.origin === location.origin ? url.pathname + url.search : null;
}

/**
 * Follows a task: live frames over the WebSocket (opened with a single-use ticket, since a
 * browser cannot send the token as a header), and polling every 2 s if that is not possible
 * or the connection drops before the task is final. Answers a function that stops it all.
 */
function watchTask(type, id, onTask, onMode, onError) {
  let stopped = false;
  let final = false;
  let socket = null;
  let timer = null;

  const seen = (task) => {
    if (stopped) return;
    final = FINAL.has(task.status);
    onTask(task);
    if (final) onMode("Finished.");
  };

  async function poll() {
    timer = null;
    if (stopped) return;
    try {
      seen(await api("GET", `/tasks/${type}/${id}`));
    } catch (e) {
      onError(e);
      if (e.status === 404 || e.status === 401) return;
    }
    if (!final && !stopped) timer = setTimeout(poll, POLL_MS);
  }

  function fallBack() {
    if (stopped || final || timer) return;
    onMode("Live updates are not available: refreshing every 2 seconds.");
    timer = setTimeout(poll, POLL_MS);
  }

  async function connect() {
    if (!config.live_url) {
      fallBack();
      return;
    }
    try {
      const { ticket } = await api("POST", "/live-tickets");
      if (stopped) return;
      socket = new WebSocket(`${config.live_url}?ticket=${encodeURIComponent(ticket)}`);
    } catch {
      fallBack();
      return;
    }
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ action: "subscribe", task_id: id }));
      onMode("Live: updates arrive as the task runs.");
    });
    socket.addEventListener("message", (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (frame.task?.task_id === id) seen(frame.task);
      if (frame.type === "error") onError(new ApiProblem(0, frame.error?.code ?? "live_error", frame.error?.message ?? "Live updates failed."));
      if (frame.type === "final") socket.close();
    });
    socket.addEventListener("close", () => fallBack());
  }

  // The first read shows the task at once (and says "not found" for someone else's).
  (async () => {
    try {
      seen(await api("GET", `/tasks/${type}/${id}`));
    } catch (e) {
      onError(e);
      onMode("");
      return;
    }
    if (!final) connect();
  })();

  return () => {
    stopped = true;
    clearTimeout(timer);
    socket?.close();
  };
}

function errorsTable(section, type, id) {
  const body = el("tbody");
  const previous = el("button", { type: "button", class: "secondary", disabled: true }, "Previous");
  const nextButton = el("button", { type: "button", class: "secondary", disabled: true }, "Next");
  const where = el("span", { class: "muted" });
  const tokens = [null];
  let at = 0;
  let next = null;

  async function load() {
    const query = new URLSearchParams({ limit: PAGE });
    if (tokens[at]) query.set("page_token", tokens[at]);
    try {
      const page = await api("GET", `/tasks/${type}/${id}/errors?${query}`);
      body.replaceChildren(...page.errors.map((e) => el("tr", {},
        el("td", { class: "num", text: e.index ?? "—" }),
        el("td", { class: "num", text: e.line ?? "—" }),
        el("td", { text: e.external_id ?? "" }),
        el("td", { text: e.field ?? "" }),
        el("td", {}, el("code", { text: e.code })),
        el("td", { text: e.message }))));
      if (!page.errors.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "muted", text: "No errors." })));
      next = page.next_page_token;
      previous.disabled = at === 0;
      nextButton.disabled = !next;
      where.textContent = `Page ${at + 1}`;
    } catch (e) {
      showError(e);
    }
  }

  previous.addEventListener("click", () => { at -= 1; load(); });
  nextButton.addEventListener("click", () => { tokens[at + 1] = next; at += 1; load(); });
  section.replaceChildren(
    el("h3", { id: "errors-title", text: "Item errors" }),
    el("table", {}, el("thead", {}, el("tr", {}, ["Item", "Line", "External id", "Field", "Code", "Message"]
      .map((h) => el("th", { scope: "col", text: h })))), body),
    el("div", { class: "pager" }, previous, where, nextButton));
  load();
}

// ---------- new task ----------

function newTaskView(view) {
  const type = el("select", { id: "new-type" }, TASK_TYPES.map((t) => el("option", { value: t }, t)));
  const file = el("input", { id: "new-file", type: "file", accept: ".csv,text/csv", required: true });
  const submit = el("button", { type: "submit" }, "Submit");
  const limit = (config.max_body_bytes / 1e6).toLocaleString();
  const form = el("form", { on: { submit: send } },
    el("div", { class: "row" },
      el("div", {}, el("label", { for: "new-type", text: "Task type" }), type),
      el("div", {}, el("label", { for: "new-file", text: "CSV file" }), file)),
    el("p", { class: "muted" }, "One beneficiary a row, with a header row: name, country, currency, iban, ",
      `and optionally bic, email and external_id. Files over ${limit} MB are uploaded first and then validated.`),
    submit);
  view.replaceChildren(el("section", { "aria-labelledby": "new-title" },
    el("h2", { id: "new-title", text: "New task" }), form));

  async function send(event) {
    event.preventDefault();
    clearAlert();
    const chosen = file.files[0];
    if (!chosen) return;
    submit.disabled = true;
    try {
      const task = chosen.size <= config.max_body_bytes
        ? await api("POST", `/tasks/${type.value}`, { body: chosen, contentType: "text/csv", headers: { "Idempotency-Key": randomKey() } })
        : await uploadFile(type.value, chosen);
      notice("Task created.");
      location.hash = `#/tasks/${task.task_type}/${task.task_id}`;
    } catch (e) {
      showError(e);
    } finally {
      submit.disabled = false;
    }
  }
}

/** The upload flow: open a session, PUT the file to storage, close the session. */
async function uploadFile(type, file) {
  if (!config.uploads_origin) {
    throw new ApiProblem(413, "too_large", `This file is larger than ${config.max_body_bytes} bytes, and uploads are not available here.`);
  }
  notice("Computing the file's checksum…");
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await file.arrayBuffer()));
  let binary = "";
  for (const byte of digest) binary += String.fromCharCode(byte);
  const task = await api("POST", `/tasks/${type}/uploads`, {
    body: { content_type: "text/csv", content_length: file.size, checksum_sha256: btoa(binary) },
    headers: { "Idempotency-Key": randomKey() },
  });
  notice("Uploading the file…");
  const headers = Object.fromEntries(Object.entries(task.upload.headers)
    .filter(([name]) => !["content-length", "host"].includes(name.toLowerCase())));
  let put;
  try {
    put = await fetch(task.upload.url, { method: task.upload.method, headers, body: file });
  } catch {
    throw new ApiProblem(0, "upload_failed", "The file could not be sent to storage. Try again.");
  }
  if (!put.ok) throw new ApiProblem(put.status, "upload_failed", `Storage refused the file (HTTP ${put.status}). Try again.`);
  return api("POST", `/tasks/${type}/${task.task_id}/upload-complete`);
}

// ---------- webhooks ----------

function webhooksView(view) {
  const body = el("tbody");
  const url = el("input", { id: "hook-url", type: "url", required: true, placeholder: "https://hooks.example.com/tasks", size: 40 });
  const description = el("input", { id: "hook-description", type: "text", maxlength: 200 });
  const events = EVENT_TYPES.map((e) => el("label", { class: "check" },
    el("input", { type: "checkbox", value: e, checked: true }), ` ${e}`));
  const secret = el("div", { "aria-live": "polite" });
  const form = el("form", { on: { submit: add } },
    el("div", { class: "row" },
      el("div", {}, el("label", { for: "hook-url", text: "URL" }), url),
      el("div", {}, el("label", { for: "hook-description", text: "Description" }), description)),
    el("fieldset", {}, el("legend", { text: "Events" }), events),
    el("button", { type: "submit" }, "Add endpoint"));
  view.replaceChildren(el("section", { "aria-labelledby": "hooks-title" },
    el("h2", { id: "hooks-title", text: "Webhook endpoints" }),
    el("table", {}, el("thead", {}, el("tr", {}, ["URL", "Events", "Status", "Created", ""].map((h) => el("th", { scope: "col", text: h })))), body),
    el("h3", { text: "Add an endpoint" }), form, secret));

  async function load() {
    try {
      const page = await api("GET", "/webhook-endpoints?limit=100");
      body.replaceChildren(...page.webhook_endpoints.map((h) => el("tr", {},
        el("td", {}, el("a", { href: `#/webhooks/${h.id}`, text: h.url })),
        el("td", { text: h.event_types.join(", ") }),
        el("td", { text: h.status }),
        el("td", { text: when(h.created_at) }),
        el("td", {}, el("button", { type: "button", class: "danger", on: { click: () => remove(h) } }, "Delete")))));
      if (!page.webhook_endpoints.length) body.append(el("tr", {}, el("td", { colspan: 5, class: "muted", text: "No endpoints yet." })));
    } catch (e) {
      showError(e);
    }
  }

  async function add(event) {
    event.preventDefault();
    clearAlert();
    const chosen = events.map((l) => l.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
    const input = { url: url.value, event_types: chosen };
    if (description.value) input.description = description.value;
    try {
      const created = await api("POST", "/webhook-endpoints", { body: input, headers: { "Idempotency-Key": randomKey() } });
      secret.replaceChildren(el("p", {}, "Endpoint added. Its signing secret is shown only now; keep it:"),
        el("p", { class: "secret" }, el("code", { text: created.secret })));
      form.reset();
      load();
    } catch (e) {
      showError(e);
    }
  }

  async function remove(hook) {
    if (!confirm(`Delete the endpoint ${hook.url}? It will get no more deliveries.`)) return;
    try {
      await api("DELETE", `/webhook-endpoints/${hook.id}`);
      notice("Endpoint deleted.");
      load();
    } catch (e) {
      showError(e);
    }
  }

  load();
}

function deliveriesView(view, endpointId) {
  const body = el("tbody");
  view.replaceChildren(el("section", { "aria-labelledby": "deliveries-title" },
    el("p", {}, el("a", { href: "#/webhooks", text: "← Webhook endpoints" })),
    el("h2", { id: "deliveries-title", text: "Delivery log" }),
    el("table", {}, el("thead", {}, el("tr", {}, ["Event", "Status", "Created", "Attempts", "Last attempt", ""].map((h) => el("th", { scope: "col", text: h })))), body)));

  async function load() {
    try {
      const page = await api("GET", `/webhook-endpoints/${encodeURIComponent(endpointId)}/deliveries?limit=100`);
      body.replaceChildren(...page.deliveries.map((d) => {
        const last = d.attempts[0];
        const lastText = last ? `${when(last.at)}: ${last.status ?? "no answer"}${last.error ? ` (${last.error.replaceAll("_", " ")})` : ""}` : "—";
        return el("tr", {},
          el("td", { text: d.event_type }),
          el("td", { text: d.status }),
          el("td", { text: when(d.created_at) }),
          el("td", { class: "num", text: d.attempts.length }),
          el("td", { text: lastText }),
          el("td", {}, el("button", { type: "button", class: "secondary", disabled: d.status === "pending", on: { click: () => retry(d) } }, "Retry")));
      }));
      if (!page.deliveries.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "muted", text: "No deliveries yet." })));
    } catch (e) {
      showError(e);
    }
  }

  async function retry(delivery) {
    if (!confirm("Send this delivery again?")) return;
    try {
      await api("POST", `/webhook-endpoints/${encodeURIComponent(endpointId)}/deliveries/${encodeURIComponent(delivery.id)}/retry`);
      notice("Delivery queued again.");
      load();
    } catch (e) {
      showError(e);
    }
  }

  load();
}

// ---------- start ----------

async function start() {
  try {
    const response = await fetch("/console/config.json", { cache: "no-store" });
    if (response.ok) config = { ...config, ...(await response.json()) };
  } catch {
    // Without its settings the console still works: no live updates, no uploads.
  }
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("token").value);
    $("token").value = "";
  });
  $("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  route();
}

start();
