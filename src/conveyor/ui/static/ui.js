// conveyor ui: the only script, served from this server (the Content-Security-Policy forbids any
// other). Pages work without it; it only refreshes the parts marked data-refresh.
"use strict";

// An element with data-refresh="URL" (and data-every="MS") gets the HTML at URL every second or
// two (the top of a running run's page: status, DAG, steps). When the response's X-Run-Status
// says the run is no longer running, the page's <main> is replaced once by a fresh copy (final
// metrics, trials, artifacts, report) without a navigation, and polling stops.
function startRefresh(el) {
  const url = el.dataset.refresh;
  const every = Math.max(Number(el.dataset.every) || 1500, 500);
  async function tick() {
    try {
      const response = await fetch(url, {credentials: "same-origin", headers: {"Accept": "text/html"}});
      if (response.redirected || response.status === 401 || response.status === 403) {
        return;  // the session ended: leave the page as it is
      }
      if (response.ok) {
        el.innerHTML = await response.text();
        const status = response.headers.get("X-Run-Status");
        if (status && status !== "running") {
          await replaceMain();
          return;
        }
      }
    } catch (err) {
      // a dropped connection (the server restarting): try again on the next tick
    }
    window.setTimeout(tick, document.hidden ? every * 4 : every);
  }
  window.setTimeout(tick, every);
}

// Swap the page's <main> for the server's current one (same URL), keeping the scroll position.
async function replaceMain() {
  const response = await fetch(window.location.href, {credentials: "same-origin"});
  if (!response.ok || response.redirected) return;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  const main = document.querySelector("main");
  const next = fresh.querySelector("main");
  if (main && next) {
    const y = window.scrollY;
    main.replaceChildren(...Array.from(next.childNodes).map((n) => document.importNode(n, true)));
    window.scrollTo(0, y);
    main.querySelectorAll("form.compare-form").forEach(guardCompare);
  }
}

// The compare button needs two ticked runs; say so instead of loading an empty page.
function guardCompare(form) {
  form.addEventListener("submit", (event) => {
    const ticked = form.querySelectorAll("input[name=run]:checked").length;
    if (ticked < 2) {
      event.preventDefault();
      const hint = form.querySelector(".hint");
      if (hint) {
        hint.textContent = "tick at least two runs to compare (" + ticked + " ticked)";
        hint.classList.add("error");
      }
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-refresh]").forEach(startRefresh);
  document.querySelectorAll("form.compare-form").forEach(guardCompare);
});
