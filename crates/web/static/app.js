// postamt's web interface: the few things that need a script. No inline
// script anywhere (the Content-Security-Policy forbids it); text from the
// server is only ever put in with textContent, never as HTML.
"use strict";

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
}

// A live transcript: ask for the rows not shown yet (the server holds the
// request up to 25 s until there are some), append them.
function followTranscript(table) {
  const id = table.dataset.id;
  const lang = table.dataset.lang || "en";
  let shown = parseInt(table.dataset.rows || "0", 10);
  const body = table.tBodies[0];
  async function poll() {
    try {
      const r = await fetch(`/api/sessions/${encodeURIComponent(id)}?from=${shown}&lang=${lang}&wait=25`,
        { credentials: "same-origin", headers: { "Accept": "application/json" } });
      if (r.status === 404) return; // the transcript is gone
      if (!r.ok) { setTimeout(poll, 5000); return; }
      const s = await r.json();
      for (const row of s.rows) {
        const tr = document.createElement("tr");
        cell(tr, row.client, "c");
        cell(tr, row.server, "s");
        cell(tr, row.meaning, "m");
        body.appendChild(tr);
        shown++;
      }
      table.dataset.rows = String(shown);
      if (!s.live) {
        table.dataset.live = "0";
        const badge = document.getElementById("live");
        if (badge) badge.remove();
        return;
      }
      setTimeout(poll, 100);
      return;
    } catch (e) { /* the server is away: try again */ }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 100);
}

// The session list: refreshed every two seconds.
function followSessions(table) {
  const body = table.tBodies[0];
  async function poll() {
    try {
      const r = await fetch("/api/sessions", { credentials: "same-origin" });
      if (r.ok) {
        const list = await r.json();
        body.replaceChildren();
        for (const s of list) {
          const tr = document.createElement("tr");
          const td = document.createElement("td");
          const a = document.createElement("a");
          a.href = "/sessions/" + encodeURIComponent(s.id);
          a.textContent = s.id;
          td.appendChild(a);
          tr.appendChild(td);
          cell(tr, s.protocol);
          cell(tr, s.peer);
          cell(tr, s.started);
          cell(tr, s.users.join(", "));
          const live = document.createElement("td");
          if (s.live) {
            const span = document.createElement("span");
            span.className = "live";
            span.textContent = "live";
            live.appendChild(span);
          }
          tr.appendChild(live);
          body.appendChild(tr);
        }
      }
    } catch (e) { /* try again */ }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  const t = document.getElementById("transcript");
  if (t && t.dataset.live === "1") followTranscript(t);
  const s = document.getElementById("sessions");
  if (s && s.dataset.live === "1") followSessions(s);
  for (const f of document.querySelectorAll("form[data-confirm]")) {
    f.addEventListener("submit", (ev) => {
      if (!window.confirm(f.dataset.confirm)) ev.preventDefault();
    });
  }
});
