/* Live updates for the dashboard, over pages that work without this file:
   - [data-live-src] pages re-read their live fragment every second and swap in each
     element with a [data-live] id (replica states, counts, events);
   - forms with [data-enhance] are posted in the background (fetch) and report in #status;
     the + and - buttons of a scale form change its number field and set that count;
   - a log list with [data-stream] follows the app's log over server-sent events. */
"use strict";

(function () {
  const POLL_MS = 1000;
  const MAX_LOG_LINES = 2000;
  document.documentElement.classList.add("js");

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function say(message, kind) {
    const status = document.getElementById("status");
    if (!status) return;
    const p = document.createElement("p");
    p.className = "flash " + kind;
    p.textContent = message;
    status.replaceChildren(p);
  }

  /* --- live fragments --------------------------------------------------------------- */

  const cpuSeen = new Map(); // container id -> [cpu seconds, time in ms]

  function showCpuRates(root) {
    const now = Date.now();
    for (const row of root.querySelectorAll("tr[data-replica]")) {
      const cell = row.querySelector("td.cpu");
      if (!cell || cell.dataset.cpu === "") continue;
      const id = row.dataset.replica;
      const cpu = parseFloat(cell.dataset.cpu);
      const before = cpuSeen.get(id);
      cpuSeen.set(id, [cpu, now]);
      if (before && now > before[1]) {
        const percent = (100 * (cpu - before[0])) / ((now - before[1]) / 1000);
        cell.textContent += " · " + Math.max(0, percent).toFixed(1) + " %";
      }
    }
  }

  function startLive(source) {
    let busy = false;
    async function refresh() {
      if (busy || document.hidden) return;
      busy = true;
      try {
        const response = await fetch(source, { headers: { Accept: "text/html" } });
        if (response.redirected || response.status === 401) {
          window.location.reload(); // signed out: the page shows the sign-in form
          return;
        }
        if (!response.ok) return;
        const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
        for (const element of fresh.querySelectorAll("[data-live][id]")) {
          const old = document.getElementById(element.id);
          if (old) old.replaceWith(document.importNode(element, true));
        }
        showCpuRates(document);
      } catch (error) {
        /* the platform restarting, or the network: try again at the next tick */
      } finally {
        busy = false;
      }
    }
    showCpuRates(document);
    setInterval(refresh, POLL_MS);
    document.addEventListener("visibilitychange", refresh);
    return refresh;
  }

  const liveRoot = document.querySelector("[data-live-src]");
  const refreshLive = liveRoot ? startLive(liveRoot.dataset.liveSrc) : function () {};

  /* --- forms posted in the background -------------------------------------------- */

  function stepCount(form, submitter, data) {
    const field = form.querySelector('input[name="count"]');
    if (!field || !submitter || !["inc", "dec"].includes(submitter.value)) return;
    const max = parseInt(field.max || "50", 10);
    const next = (parseInt(field.value || "0", 10) || 0) + (submitter.value === "inc" ? 1 : -1);
    field.value = String(Math.min(max, Math.max(0, next)));
    data.set("count", field.value);
    data.set("op", "set");
  }

  async function post(form, submitter) {
    const data = new FormData(form, submitter);
    stepCount(form, submitter, data);
    const buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    say("Working…", "ok");
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: data,
        headers: { Accept: "application/json", "X-CSRF-Token": csrfToken() },
      });
      const body = await response.json().catch(function () { return {}; });
      if (!response.ok) {
        say(body.message || "The request failed (" + response.status + ").", "error");
        return;
      }
      if (form.dataset.enhance === "reload") {
        window.location.reload();
        return;
      }
      say(body.message || "Done.", "ok");
      refreshLive();
    } catch (error) {
      say("The platform did not answer. Try again.", "error");
    } finally {
      buttons.forEach(function (b) { b.disabled = false; });
    }
  }

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.enhance) return;
    event.preventDefault();
    post(form, event.submitter);
  });

  /* --- following the log ------------------------------------------------------------ */

  const log = document.querySelector("[data-stream]");
  if (log && window.EventSource) {
    const source = new EventSource(log.dataset.stream);
    source.addEventListener("open", function () {
      log.replaceChildren(); // the stream starts with the latest lines again
    });
    source.addEventListener("message", function (event) {
      const item = document.createElement("li");
      item.className = event.data.startsWith("paas[") ? "paas" : "app";
      item.textContent = event.data;
      const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.append(item);
      while (log.childElementCount > MAX_LOG_LINES) log.firstElementChild.remove();
      if (atEnd) log.scrollTop = log.scrollHeight;
    });
  }
})();
