// Keyboard shortcuts and click-to-reveal media. Content is never inserted as HTML here.
(function () {
  document.querySelectorAll("[data-reveal]").forEach(function (el) {
    el.addEventListener("click", function () { el.classList.remove("blurred"); });
    el.addEventListener("keydown", function (e) { if (e.key === "Enter") el.classList.remove("blurred"); });
  });
  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) return;
    if (e.key === "v") {
      document.querySelectorAll("[data-reveal].blurred").forEach(function (el) { el.classList.remove("blurred"); });
      return;
    }
    var target = document.querySelector('[data-key="' + e.key + '"]');
    if (target) { e.preventDefault(); target.click(); }
  });
})();
