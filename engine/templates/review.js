// The review page's keys, filters and buttons. Verdicts are POSTed at once; the cells then show
// what the server answered, never what was hoped. Included by review.html.j2 (a Jinja template:
// no double braces here).
"use strict";
(() => {
  const FILTERS = ["all", "pending", "approved", "rejected"];
  const STATES = ["pending", "approved", "rejected"];
  const grid = document.getElementById("grid");
  const bar = document.getElementById("bar");
  const status = document.getElementById("status");
  const bulk = document.getElementById("approve-shown");
  const cells = [...grid.querySelectorAll(".cell")];
  const byJob = new Map(cells.map((cell) => [cell.dataset.job, cell]));
  let filter = FILTERS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "all";
  let selected = null;
  let noteBox = null;

  const shown = () => cells.filter((cell) => !cell.hidden);

  function say(text, error = false) {
    status.textContent = text;
    status.classList.toggle("error", error);
  }

  // Where the sticky bar ends, so a cell scrolled into view is not hidden under it.
  function measureBar() {
    document.documentElement.style.setProperty("--bar", `${bar.offsetHeight}px`);
  }

  function refresh() {
    const counts = { all: cells.length, pending: 0, approved: 0, rejected: 0 };
    for (const cell of cells) {
      counts[cell.dataset.state] += 1;
      cell.hidden = filter !== "all" && cell.dataset.state !== filter;
    }
    for (const name of FILTERS) {
      document.querySelector(`[data-count="${name}"]`).textContent = counts[name];
      document.querySelector(`[data-filter="${name}"]`).setAttribute("aria-pressed", String(name === filter));
    }
    const approvable = shown().filter((cell) => cell.dataset.state !== "approved").length;
    document.getElementById("approvable").textContent = approvable;
    bulk.disabled = approvable === 0;
    document.getElementById("empty").hidden = cells.length === 0 || shown().length > 0;
    if (selected && selected.hidden) {
      // The selected shot left the filter (it was just judged): its successor takes its place.
      const after = cells.slice(cells.indexOf(selected) + 1).find((cell) => !cell.hidden);
      const before = cells.slice(0, cells.indexOf(selected)).reverse().find((cell) => !cell.hidden);
      select(after || before || null, false);
    } else if (!selected) {
      select(shown()[0] || null, false);
    }
    measureBar();
  }

  function select(cell, scroll = true) {
    if (cell === selected) return;
    closeNote();
    if (selected) selected.classList.remove("selected");
    selected = cell;
    if (!cell) return;
    cell.classList.add("selected");
    if (scroll) cell.scrollIntoView({ block: "nearest" });
  }

  function columns() {
    const visible = shown();
    if (!visible.length) return 1;
    const top = visible[0].offsetTop;
    return Math.max(1, visible.filter((cell) => cell.offsetTop === top).length);
  }

  function move(step) {
    const visible = shown();
    if (!visible.length) return;
    const at = visible.indexOf(selected);
    if (at < 0) return select(visible[0]);
    select(visible[Math.min(visible.length - 1, Math.max(0, at + step))]);
  }

  function show(cell, state, note) {
    cell.dataset.state = state;
    for (const name of STATES) cell.classList.toggle(name, name === state);
    cell.querySelector(".state").textContent = state;
    const line = cell.querySelector(".note");
    line.textContent = note || "";
    line.hidden = !note;
  }

  // One verdict at a time, in the order given: `a` then `r` on a shot leaves it rejected.
  let queue = Promise.resolve();

  function give(jobs, verdict, note) {
    const done = queue.then(() => send(jobs, verdict, note));
    queue = done.catch((error) => say(`not saved: ${error.message}`, true));
    return done;
  }

  async function send(jobs, verdict, note) {
    const seen = Object.fromEntries(jobs.map((job) => [job, byJob.get(job).dataset.sha256]));
    const body = { jobs, verdict, seen };
    if (note !== undefined) body.note = note;
    let answer;
    try {
      const response = await fetch("/api/verdicts", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      answer = await response.json();
      if (!response.ok) throw new Error(answer.error || response.statusText);
    } catch (error) {
      say(`not saved: ${error.message}`, true);
      return false;
    }
    for (const [job, shot] of Object.entries(answer.shots)) {
      const cell = byJob.get(job);
      // A shot whose picture changed since this page loaded keeps what the page showed.
      if (cell && cell.dataset.sha256 === shot.sha256) show(cell, shot.state, shot.note);
    }
    refresh();
    const what = jobs.length === 1 ? jobs[0] : `${jobs.length} shots`;
    say(`${what}: ${verdict}${note ? " with a note" : ""}, saved`);
    return true;
  }

  function judge(verdict) {
    if (!selected) return;
    give([selected.dataset.job], verdict);
  }

  function openNote() {
    if (!selected) return;
    if (noteBox) return noteBox.focus();
    const cell = selected;
    const pending = cell.dataset.state === "pending";
    noteBox = document.createElement("input");
    noteBox.type = "text";
    noteBox.className = "note-box";
    noteBox.maxLength = 2000;
    noteBox.value = cell.querySelector(".note").textContent;
    noteBox.placeholder = pending ? "note: Enter rejects with it, Esc cancels" : "note: Enter saves, Esc cancels";
    noteBox.setAttribute("aria-label", `note on ${cell.dataset.job}`);
    noteBox.addEventListener("keydown", async (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        closeNote();
        say("note not changed");
      } else if (event.key === "Enter" && !event.isComposing) {
        event.preventDefault();
        const box = noteBox;
        box.disabled = true;
        // A note is kept with a verdict: on a pending shot, the note is why it is rejected.
        const verdict = cell.dataset.state === "pending" ? "rejected" : cell.dataset.state;
        if (await give([cell.dataset.job], verdict, box.value.trim())) {
          if (noteBox === box) closeNote();
        } else {
          box.disabled = false;
          box.focus();
        }
      }
    });
    cell.querySelector(".facts").insertBefore(noteBox, cell.querySelector(".actions"));
    noteBox.focus();
  }

  function closeNote() {
    if (!noteBox) return;
    const box = noteBox;
    noteBox = null;
    box.remove();
  }

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target instanceof Element && event.target.closest("input, textarea, select")) return;
    switch (event.key) {
      case "j": case "ArrowRight": move(1); break;
      case "k": case "ArrowLeft": move(-1); break;
      case "ArrowDown": move(columns()); break;
      case "ArrowUp": move(-columns()); break;
      case "a": judge("approved"); break;
      case "r": judge("rejected"); break;
      case "u": judge("pending"); break;
      case "n": openNote(); break;
      case "o": if (selected) window.open(selected.querySelector(".picture").href, "_blank", "noopener"); break;
      default: return;
    }
    event.preventDefault();
  });

  grid.addEventListener("click", (event) => {
    const cell = event.target.closest(".cell");
    if (!cell || event.target.closest(".note-box")) return;
    select(cell, false);
    const act = event.target.closest("[data-act]");
    if (!act) return;
    if (act.dataset.act === "note") openNote();
    else judge(act.dataset.act);
  });

  for (const button of document.querySelectorAll("[data-filter]")) {
    button.addEventListener("click", () => {
      filter = button.dataset.filter;
      history.replaceState(null, "", filter === "all" ? location.pathname : `#${filter}`);
      refresh();
    });
  }

  bulk.addEventListener("click", () => {
    const cellsToApprove = shown().filter((cell) => cell.dataset.state !== "approved");
    const rejected = cellsToApprove.filter((cell) => cell.dataset.state === "rejected").length;
    if (!cellsToApprove.length) return;
    // Overturning a rejection in bulk is easy to do by mistake: it is asked, once.
    if (rejected && !window.confirm(`${rejected} of the ${cellsToApprove.length} shots shown were rejected. Approve them all?`)) {
      say("nothing approved");
      return;
    }
    give(cellsToApprove.map((cell) => cell.dataset.job), "approved");
  });

  window.addEventListener("resize", measureBar);
  refresh();
})();
