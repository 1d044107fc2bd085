// The reviewer workspace's keyboard and media handling. Loaded as a file (the CSP allows no
// inline script). Content is never inserted as HTML here: only textContent.
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content;

  // Media stays hidden until revealed, per item; a reveal is reported for the exposure count.
  function reveal(el) {
    if (!el.classList.contains("blurred")) return;
    el.classList.remove("blurred");
    el.setAttribute("aria-label", "Submitted media, revealed");
    var video = el.querySelector("video");
    if (video && el.hasAttribute("data-autoplay")) video.play().catch(function () {});
    var url = el.getAttribute("data-reveal");
    if (url && csrf) {
      fetch(url, { method: "POST", headers: { "X-CSRFToken": csrf }, credentials: "same-origin" })
        .then(function (response) {
          // The header's counter follows the reveal at once, not on the next page.
          var count = response.headers.get("X-Reveals-Today");
          var counter = document.getElementById("exposure-today");
          if (count !== null && counter) counter.textContent = count + " seen today";
        })
        .catch(function () {});
    }
  }
  document.querySelectorAll("[data-reveal]").forEach(function (el) {
    el.addEventListener("click", function () { reveal(el); });
    el.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); reveal(el); }
    });
  });

  // Undo is offered for a few seconds after a decision.
  var undo = document.getElementById("undo");
  if (undo) {
    var seconds = parseInt(undo.getAttribute("data-expires-in"), 10) || 10;
    setTimeout(function () { undo.remove(); }, seconds * 1000);
  }

  // A page that follows work in progress (a shadow run) reloads itself until the work is
  // done, and the reader can stop it (a <meta> refresh cannot be stopped).
  var autoRefresh = document.getElementById("auto-refresh");
  if (autoRefresh) {
    var refreshTimer = setTimeout(function () { location.reload(); },
      1000 * Number(autoRefresh.getAttribute("data-refresh-seconds")));
    var stopRefresh = document.getElementById("auto-refresh-stop");
    if (stopRefresh) stopRefresh.addEventListener("click", function () {
      clearTimeout(refreshTimer);
      autoRefresh.textContent = "(refreshing stopped: reload the page to see progress)";
    });
  }

  // The reviewer's hold on the item, counted down: a warning in its last minute (or its last
  // fifth, if shorter), and a plain word once it ran out (another reviewer may take it).
  var claim = document.getElementById("claim");
  if (claim) {
    var deadline = Date.now() + (parseInt(claim.getAttribute("data-seconds-left"), 10) || 0) * 1000;
    var warnAt = Math.min(60, (parseInt(claim.getAttribute("data-seconds-left"), 10) || 0) / 5);
    var left = claim.querySelector(".claim-left");
    var tick = function () {
      var seconds = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      left.textContent = Math.floor(seconds / 60) + ":" + String(seconds % 60).padStart(2, "0");
      if (seconds <= warnAt && seconds > 0) {
        claim.classList.add("warning");
        claim.querySelector(".claim-warning").hidden = false;
        claim.setAttribute("role", "alert");
      }
      if (seconds === 0) {
        claim.querySelector(".claim-warning").hidden = true;
        claim.querySelector(".claim-expired").hidden = false;
        claim.classList.add("expired");
        clearInterval(timer);
      }
    };
    var timer = setInterval(tick, 1000);
  }

  // Reasons by digit, then the action key decides. Remove and escalate need a reason.
  // Each reason keeps its own digit (an admin's choice); a digit no reason has says so, and
  // an action key after a digit its action has no reason for decides nothing.
  var decide = document.getElementById("decide");
  var pendingDigit = null;
  function say(text, isError) {
    var hint = document.getElementById("reason-hint");
    if (!hint) return;
    hint.textContent = text;
    hint.classList.toggle("error", !!isError);
  }
  function pickDigit(digit) {
    var matched = 0;
    document.querySelectorAll("#decide input[data-digit]").forEach(function (input) {
      input.checked = input.getAttribute("data-digit") === String(digit);
      if (input.checked) matched += 1;
    });
    pendingDigit = matched ? digit : null;
    if (matched) say("Reason " + digit + " picked: now press a, r or e.");
    else say("No reason has the key " + digit + ": nothing picked.", true);
  }
  function clearDigit() {
    pendingDigit = null;
    document.querySelectorAll("#decide input[data-digit]").forEach(function (input) {
      input.checked = false;
    });
    say("No reason picked. Press a reason's digit, then the action key.");
  }
  if (decide) {
    decide.addEventListener("submit", function (e) {
      var button = e.submitter;
      if (!button) return;
      var group = button.closest("fieldset");
      if (pendingDigit !== null && group && !group.querySelector("input[type=radio]:checked")) {
        // "5 a" with no approve reason 5: not an approval without a reason by accident.
        e.preventDefault();
        say(button.textContent.replace(/\s*\(.*\)$/, "") + " has no reason with the key " +
            pendingDigit + ": press one of its digits, or Esc and then " +
            button.getAttribute("data-key") + " alone.", true);
        return;
      }
      if (!button.hasAttribute("data-reason-required")) return;
      if (group && !group.querySelector("input[type=radio]:checked")) {
        e.preventDefault();
        var hint = document.getElementById("reason-hint");
        hint.textContent = "Pick a reason to " + button.value + " first: press its digit, then " +
          button.getAttribute("data-key") + ".";
        hint.classList.add("error");
        var first = group.querySelector("input[type=radio]");
        if (first) first.focus();
      }
    });
  }

  // The queue: j/k move between rows, Enter opens.
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.queue-row"));
  var current = -1;
  function focusRow(index) {
    if (!rows.length) return;
    current = Math.max(0, Math.min(rows.length - 1, index));
    rows.forEach(function (row, i) { row.classList.toggle("current", i === current); });
    var link = rows[current].querySelector("a");
    if (link) link.focus();
  }

  // The help dialog lists every control that declares a shortcut.
  var dialog = document.getElementById("shortcuts");
  function openHelp() {
    if (!dialog) return;
    var list = document.getElementById("shortcut-list");
    list.textContent = "";
    var seen = {};
    document.querySelectorAll("[aria-keyshortcuts]").forEach(function (el) {
      var keys = el.getAttribute("aria-keyshortcuts");
      var label = el.getAttribute("data-shortcut-label") || el.getAttribute("aria-label") ||
        el.textContent.replace(/\s+/g, " ").trim();
      if (el.hasAttribute("data-digit")) { keys = "1–9"; label = "Pick a reason (then the action key)"; }
      if (seen[keys + label]) return;
      seen[keys + label] = true;
      var item = document.createElement("li");
      var kbd = document.createElement("kbd");
      kbd.textContent = keys;
      item.appendChild(kbd);
      item.appendChild(document.createTextNode(" " + label));
      list.appendChild(item);
    });
    dialog.showModal();
  }
  var helpButton = document.getElementById("open-shortcuts");
  if (helpButton) helpButton.addEventListener("click", openHelp);

  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (dialog && dialog.open) return;
    var typing = t && (t.tagName === "INPUT" && t.type !== "radio" || t.tagName === "TEXTAREA" ||
                       t.tagName === "SELECT");
    // Esc leaves the note (or any field) and hands the keys back to the shortcuts; what was
    // typed stays. Inside a field every key is text: digits never pick a reason there.
    if (typing && e.key === "Escape") {
      e.preventDefault();
      t.blur();
      var main = document.getElementById("main");
      if (main) main.focus({ preventScroll: true });
      return;
    }
    if (typing) return;
    if (e.key === "?") { e.preventDefault(); openHelp(); return; }
    if (e.key === "v") {
      document.querySelectorAll("[data-reveal].blurred").forEach(reveal);
      return;
    }
    if (decide && /^[1-9]$/.test(e.key)) { e.preventDefault(); pickDigit(e.key); return; }
    if (decide && e.key === "Escape" && pendingDigit !== null) { clearDigit(); return; }
    if (rows.length && (e.key === "j" || e.key === "k")) {
      e.preventDefault();
      focusRow(current + (e.key === "j" ? 1 : -1));
      return;
    }
    if (e.key === "u" && undo) { e.preventDefault(); undo.requestSubmit(); return; }
    var target = document.querySelector('[data-key="' + e.key + '"]');
    if (target) {
      e.preventDefault();
      if (target.form && target.type === "submit") target.form.requestSubmit(target);
      else target.click();
    }
  });
})();
