/* itsm console: a small enhancement. Every page works without it; this script only
   makes the common things quicker:
   - the bell's unread count refreshes every minute and when the tab comes back;
   - the phone menu's toggle becomes a button that says whether the menu is open;
   - "Mark read" and "Mark all read" on the notification list act in place;
   - a record page's "May help" list is fetched into place (without script, its link
     opens the list's own page);
   - keyboard shortcuts: "g" then a letter goes to a page of the menu (g h home,
     g n notifications, g q the first queue), "?" shows them all, Escape closes.
   Served by the application itself; the Content-Security-Policy allows no other script. */
(function () {
  "use strict";

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  var bell = document.getElementById("bell");
  var shownUpTo = 99;

  function showCount(unread) {
    if (!bell) { return; }
    var count = bell.querySelector("[data-bell-count]");
    if (!count) { return; }
    count.textContent = unread > shownUpTo ? shownUpTo + "+" : String(unread);
    count.classList.toggle("none", unread === 0);
  }

  function refreshCount() {
    if (!bell || document.hidden) { return; }
    fetch(bell.getAttribute("data-count-url"), {
      credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (body) {
      if (body && typeof body.unread === "number") { showCount(body.unread); }
    }).catch(function () { /* offline: the count waits for the next try */ });
  }

  if (bell) {
    window.setInterval(refreshCount, 60000);
    document.addEventListener("visibilitychange", refreshCount);
  }

  /* -- the phone menu: a real button that says whether it is open -------------------- */

  var toggle = document.getElementById("nav-toggle");
  var label = document.querySelector('label[for="nav-toggle"]');
  if (toggle && label) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "nav-button";
    button.textContent = label.textContent;
    button.setAttribute("aria-controls", "main-nav");
    button.setAttribute("aria-expanded", String(toggle.checked));
    button.addEventListener("click", function () {
      toggle.checked = !toggle.checked;
      button.setAttribute("aria-expanded", String(toggle.checked));
    });
    toggle.tabIndex = -1;
    toggle.setAttribute("aria-hidden", "true");
    label.replaceWith(button);
  }

  /* -- marking notifications read in place ----------------------------------------- */

  function markRead(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json",
                 "X-CSRF-Token": csrf },
      body: JSON.stringify(body)
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    });
  }

  function settle(item) {
    item.classList.remove("unread");
    var form = item.querySelector("form[data-inbox-read]");
    if (form) { form.remove(); }
    var hidden = item.querySelector(".note-head .visually-hidden");
    if (hidden) { hidden.remove(); }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var list = document.getElementById("inbox");
    if (!list || !(form instanceof HTMLFormElement)) { return; }
    var url = list.getAttribute("data-read-url");
    var one = form.getAttribute("data-inbox-read");
    var all = form.hasAttribute("data-inbox-all");
    if (!url || (!one && !all)) { return; }
    event.preventDefault();
    var body = all ? { all: true } : { ids: [parseInt(one, 10)] };
    markRead(url, body).then(function (answer) {
      var items = all ? list.querySelectorAll(".note.unread")
        : list.querySelectorAll('.note[data-notification="' + one + '"]');
      Array.prototype.forEach.call(items, settle);
      if (all) { form.remove(); }
      showCount(answer.unread);
      var status = document.getElementById("inbox-status");
      if (status) {
        status.textContent = all ? "Every notification is marked read." : "Marked read.";
      }
    }).catch(function () { form.submit(); });  /* the page's own way still works */
  });

  /* -- a record page's suggestions, fetched into place --------------------------------- */

  Array.prototype.forEach.call(document.querySelectorAll("[data-suggestions]"), function (box) {
    fetch(box.getAttribute("data-suggestions"), {
      credentials: "same-origin", headers: { "Accept": "text/html" }
    }).then(function (response) {
      return response.ok ? response.text() : null;
    }).then(function (html) {
      if (html === null) { return; }  /* the link stays: it opens the list's page */
      var parsed = new DOMParser().parseFromString(html, "text/html");
      box.replaceChildren.apply(box, Array.prototype.slice.call(parsed.body.childNodes));
    }).catch(function () { /* offline: the link still opens the list's page */ });
  });

  /* -- keyboard shortcuts ------------------------------------------------------------ */

  var targets = {};
  Array.prototype.forEach.call(document.querySelectorAll("a[data-go]"), function (link) {
    targets[link.getAttribute("data-go")] = link;
  });
  var pendingG = false;
  var help = null;

  function typing(element) {
    if (!element) { return false; }
    var tag = element.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || element.isContentEditable;
  }

  function showHelp() {
    if (!help) {
      help = document.createElement("dialog");
      help.className = "shortcuts";
      help.setAttribute("aria-labelledby", "shortcuts-title");
      var title = document.createElement("h2");
      title.id = "shortcuts-title";
      title.textContent = "Keyboard shortcuts";
      help.appendChild(title);
      var list = document.createElement("dl");
      var rows = [["?", "show this help"]];
      Object.keys(targets).sort().forEach(function (key) {
        rows.push(["g " + key, targets[key].textContent.trim()]);
      });
      rows.push(["Esc", "close"]);
      rows.forEach(function (row) {
        var term = document.createElement("dt");
        var kbd = document.createElement("kbd");
        kbd.textContent = row[0];
        term.appendChild(kbd);
        var what = document.createElement("dd");
        what.textContent = row[1];
        list.appendChild(term);
        list.appendChild(what);
      });
      help.appendChild(list);
      var close = document.createElement("button");
      close.type = "button";
      close.className = "secondary small";
      close.textContent = "Close";
      close.addEventListener("click", function () { help.close(); });
      help.appendChild(close);
      document.body.appendChild(help);
    }
    if (!help.open) { help.showModal(); }
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    if (event.key === "?") {
      event.preventDefault();
      showHelp();
      return;
    }
    if (pendingG) {
      pendingG = false;
      var link = targets[event.key];
      if (link) {
        event.preventDefault();
        window.location.assign(link.href);
      }
      return;
    }
    if (event.key === "g") {
      pendingG = true;
      window.setTimeout(function () { pendingG = false; }, 1500);
    }
  });
}());
